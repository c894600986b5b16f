#include <cmath>

#include "model/ops/adamw.h"
#include "model/ops/cuda/cuda_check.h"
#include "model/ops/cuda/device.h"
#include "model/ops/cuda/launch.h"

namespace lora::cuda {

namespace {
__global__ void adamw_kernel(float* params, const float* grads, float* m, float* v, size_t n, float beta1, float beta2,
                             float eps, float step_size, float bc2_sqrt, float decay) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
    const float g = grads[i];
    const float mi = beta1 * m[i] + (1.0f - beta1) * g;
    const float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    params[i] = params[i] * decay - step_size * mi / (sqrtf(vi) / bc2_sqrt + eps);
  }
}
}  // namespace

// The bias corrections are computed on the host in float, as the CPU op computes them.
template <>
void adamw_update<float>(float* params, const float* grads, float* m, float* v, size_t n, float lr, float beta1,
                         float beta2, float eps, float weight_decay, long t) {
  const float bc1 = 1.0f - std::pow(beta1, float(t));
  const float bc2_sqrt = std::sqrt(1.0f - std::pow(beta2, float(t)));
  adamw_kernel<<<blocks_for(n), kThreads, 0, compute_stream()>>>(params, grads, m, v, n, beta1, beta2, eps, lr / bc1,
                                                                 bc2_sqrt, 1.0f - lr * weight_decay);
  LORA_CUDA_CHECK_LAUNCH("adamw_kernel");
}

}  // namespace lora::cuda
