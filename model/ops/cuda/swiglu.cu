#include "model/ops/cuda/cuda_check.h"
#include "model/ops/cuda/device.h"
#include "model/ops/cuda/launch.h"
#include "model/ops/swiglu.h"

namespace lora::cuda {

// One thread per output element (i, j) of [M x F]; h's row i is [gate | up].
namespace {
__device__ inline float sigmoid(float a) { return 1.0f / (1.0f + expf(-a)); }

__global__ void swiglu_forward_kernel(float* out, const float* h, int F, size_t n) {
  for (size_t k = blockIdx.x * size_t(blockDim.x) + threadIdx.x; k < n; k += size_t(gridDim.x) * blockDim.x) {
    const size_t i = k / F, j = k % F;
    const float a = h[i * 2 * F + j], up = h[i * 2 * F + F + j];
    out[k] = a * sigmoid(a) * up;
  }
}

__global__ void swiglu_backward_kernel(float* dh, const float* dout, const float* h, int F, size_t n) {
  for (size_t k = blockIdx.x * size_t(blockDim.x) + threadIdx.x; k < n; k += size_t(gridDim.x) * blockDim.x) {
    const size_t i = k / F, j = k % F;
    const float a = h[i * 2 * F + j], up = h[i * 2 * F + F + j], s = sigmoid(a);
    dh[i * 2 * F + F + j] = dout[k] * a * s;
    dh[i * 2 * F + j] = dout[k] * up * s * (1.0f + a * (1.0f - s));
  }
}
}  // namespace

template <>
void swiglu_forward<float>(float* out, const float* h, int M, int F) {
  const size_t n = size_t(M) * F;
  if (n == 0) return;
  swiglu_forward_kernel<<<blocks_for(n), kThreads, 0, compute_stream()>>>(out, h, F, n);
  LORA_CUDA_CHECK_LAUNCH("swiglu_forward_kernel");
}

template <>
void swiglu_backward<float>(float* dh, const float* dout, const float* h, int M, int F) {
  const size_t n = size_t(M) * F;
  if (n == 0) return;
  swiglu_backward_kernel<<<blocks_for(n), kThreads, 0, compute_stream()>>>(dh, dout, h, F, n);
  LORA_CUDA_CHECK_LAUNCH("swiglu_backward_kernel");
}

}  // namespace lora::cuda
