#include "model/ops/cuda/cuda_check.h"
#include "model/ops/cuda/device.h"
#include "model/ops/cuda/launch.h"
#include "model/ops/residual.h"

namespace lora::cuda {

namespace {
__global__ void residual_forward_kernel(float* out, const float* a, const float* b, size_t n) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x)
    out[i] = a[i] + b[i];
}
}  // namespace

template <>
void residual_forward<float>(float* out, const float* a, const float* b, size_t n) {
  residual_forward_kernel<<<blocks_for(n), kThreads, 0, compute_stream()>>>(out, a, b, n);
  LORA_CUDA_CHECK_LAUNCH("residual_forward_kernel");
}

}  // namespace lora::cuda
