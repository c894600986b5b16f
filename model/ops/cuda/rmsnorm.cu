#include "model/ops/cuda/cuda_check.h"
#include "model/ops/cuda/device.h"
#include "model/ops/cuda/launch.h"
#include "model/ops/rmsnorm.h"

namespace lora::cuda {

// As layernorm.cu: one block per row for the row statistic; the gain's gradient one thread
// per column, summing the rows in order (no atomics: reproducible).
namespace {
__global__ void rmsnorm_forward_kernel(float* out, float* rrms, const float* x, const float* w, int C, float eps) {
  __shared__ float shared[32];
  const size_t row = blockIdx.x;
  const float* xi = x + row * C;
  float* oi = out + row * C;
  float ss = 0;
  for (int j = threadIdx.x; j < C; j += blockDim.x) ss += xi[j] * xi[j];
  const float r = rsqrtf(block_sum(ss, shared) / C + eps);
  for (int j = threadIdx.x; j < C; j += blockDim.x) oi[j] = xi[j] * r * w[j];
  if (threadIdx.x == 0) rrms[row] = r;
}

// dx += r * (g - x * r^2 * mean(g * x)), g = dout * w.
__global__ void rmsnorm_backward_kernel(float* dx, const float* dout, const float* x, const float* rrms, const float* w,
                                        int C) {
  __shared__ float shared[32];
  const size_t row = blockIdx.x;
  const float *xi = x + row * C, *di = dout + row * C;
  float* dxi = dx + row * C;
  const float r = rrms[row];
  float gx = 0;
  for (int j = threadIdx.x; j < C; j += blockDim.x) gx += di[j] * w[j] * xi[j];
  const float gx_mean = block_sum(gx, shared) / C;
  for (int j = threadIdx.x; j < C; j += blockDim.x) dxi[j] += r * (di[j] * w[j] - xi[j] * r * r * gx_mean);
}

__global__ void rmsnorm_weight_kernel(float* dw, const float* dout, const float* x, const float* rrms, int M, int C) {
  const int j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= C) return;
  float s = 0;
  for (int i = 0; i < M; ++i) {
    const size_t k = size_t(i) * C + j;
    s += dout[k] * x[k] * rrms[i];
  }
  dw[j] += s;
}
}  // namespace

template <>
void rmsnorm_forward<float>(float* out, float* rrms, const float* x, const float* w, int M, int C, float eps) {
  if (M == 0) return;
  rmsnorm_forward_kernel<<<M, kThreads, 0, compute_stream()>>>(out, rrms, x, w, C, eps);
  LORA_CUDA_CHECK_LAUNCH("rmsnorm_forward_kernel");
}

template <>
void rmsnorm_backward<float>(float* dx, const float* dout, const float* x, const float* rrms, const float* w, int M,
                             int C) {
  if (M == 0) return;
  rmsnorm_backward_kernel<<<M, kThreads, 0, compute_stream()>>>(dx, dout, x, rrms, w, C);
  LORA_CUDA_CHECK_LAUNCH("rmsnorm_backward_kernel");
}

template <>
void rmsnorm_backward_weight<float>(float* dw, const float* dout, const float* x, const float* rrms, int M, int C) {
  rmsnorm_weight_kernel<<<(C + kThreads - 1) / kThreads, kThreads, 0, compute_stream()>>>(dw, dout, x, rrms, M, C);
  LORA_CUDA_CHECK_LAUNCH("rmsnorm_weight_kernel");
}

}  // namespace lora::cuda
