#include "model/ops/cuda/cuda_check.h"
#include "model/ops/cuda/device.h"
#include "model/ops/cuda/launch.h"
#include "model/ops/dropout.h"

namespace lora::cuda {

// One thread per element; the mask comes from dropout_keep, the CPU loop's own function.
namespace {
__global__ void dropout_forward_kernel(float* out, const float* x, int M, int K, float p, DropoutKey key) {
  const size_t n = size_t(M) * K;
  const float scale = 1.0f / (1.0f - p);
  for (size_t idx = blockIdx.x * size_t(blockDim.x) + threadIdx.x; idx < n; idx += size_t(gridDim.x) * blockDim.x) {
    const int i = static_cast<int>(idx / K), j = static_cast<int>(idx % K);
    out[idx] = dropout_keep(key, i, j, p) ? x[idx] * scale : 0.0f;
  }
}

__global__ void dropout_backward_kernel(float* dx, const float* dout, int M, int K, float p, DropoutKey key) {
  const size_t n = size_t(M) * K;
  const float scale = 1.0f / (1.0f - p);
  for (size_t idx = blockIdx.x * size_t(blockDim.x) + threadIdx.x; idx < n; idx += size_t(gridDim.x) * blockDim.x) {
    const int i = static_cast<int>(idx / K), j = static_cast<int>(idx % K);
    if (dropout_keep(key, i, j, p)) dx[idx] += dout[idx] * scale;
  }
}
}  // namespace

template <>
void dropout_forward<float>(float* out, const float* x, int M, int K, float p, const DropoutKey& key) {
  dropout_forward_kernel<<<blocks_for(size_t(M) * K), kThreads, 0, compute_stream()>>>(out, x, M, K, p, key);
  LORA_CUDA_CHECK_LAUNCH("dropout_forward_kernel");
}

template <>
void dropout_backward<float>(float* dx, const float* dout, int M, int K, float p, const DropoutKey& key) {
  dropout_backward_kernel<<<blocks_for(size_t(M) * K), kThreads, 0, compute_stream()>>>(dx, dout, M, K, p, key);
  LORA_CUDA_CHECK_LAUNCH("dropout_backward_kernel");
}

}  // namespace lora::cuda
