#include "model/ops/cuda/cuda_check.h"
#include "model/ops/cuda/device.h"
#include "model/ops/cuda/launch.h"
#include "model/ops/gelu.h"

namespace lora::cuda {

namespace {
constexpr float kSqrt2OverPi = 0.7978845608028654f;

__global__ void gelu_forward_kernel(float* out, const float* x, size_t n) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
    const float v = x[i];
    out[i] = 0.5f * v * (1.0f + tanhf(kSqrt2OverPi * (v + 0.044715f * v * v * v)));
  }
}

__global__ void gelu_backward_kernel(float* dx, const float* dout, const float* x, size_t n) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
    const float v = x[i];
    const float th = tanhf(kSqrt2OverPi * (v + 0.044715f * v * v * v));
    const float dinner = kSqrt2OverPi * (1.0f + 3.0f * 0.044715f * v * v);
    dx[i] = dout[i] * (0.5f * (1.0f + th) + 0.5f * v * (1.0f - th * th) * dinner);
  }
}
}  // namespace

template <>
void gelu_forward<float>(float* out, const float* x, size_t n) {
  gelu_forward_kernel<<<blocks_for(n), kThreads, 0, compute_stream()>>>(out, x, n);
  LORA_CUDA_CHECK_LAUNCH("gelu_forward_kernel");
}

template <>
void gelu_backward<float>(float* dx, const float* dout, const float* x, size_t n) {
  gelu_backward_kernel<<<blocks_for(n), kThreads, 0, compute_stream()>>>(dx, dout, x, n);
  LORA_CUDA_CHECK_LAUNCH("gelu_backward_kernel");
}

}  // namespace lora::cuda
