#include "model/ops/cuda/cuda_check.h"
#include "model/ops/cuda/device.h"
#include "model/ops/cuda/launch.h"
#include "model/ops/layernorm.h"

namespace lora::cuda {

// One block per row for the row statistics; the parameter gradients take one thread per
// column, summing the rows in order as the CPU does (no atomics: the sums are reproducible).
namespace {
__global__ void layernorm_forward_kernel(float* out, float* mean, float* rstd, const float* x, const float* w,
                                         const float* b, int C, float eps) {
  __shared__ float shared[32];
  const size_t row = blockIdx.x;
  const float* xi = x + row * C;
  float* oi = out + row * C;
  float s = 0;
  for (int j = threadIdx.x; j < C; j += blockDim.x) s += xi[j];
  const float m = block_sum(s, shared) / C;
  float v = 0;
  for (int j = threadIdx.x; j < C; j += blockDim.x) v += (xi[j] - m) * (xi[j] - m);
  const float r = rsqrtf(block_sum(v, shared) / C + eps);
  for (int j = threadIdx.x; j < C; j += blockDim.x) oi[j] = (xi[j] - m) * r * w[j] + b[j];
  if (threadIdx.x == 0) {
    mean[row] = m;
    rstd[row] = r;
  }
}

__global__ void layernorm_backward_kernel(float* dx, const float* dout, const float* x, const float* mean,
                                          const float* rstd, const float* w, int C) {
  __shared__ float shared[32];
  const size_t row = blockIdx.x;
  const float *xi = x + row * C, *di = dout + row * C;
  float* dxi = dx + row * C;
  const float m = mean[row], s = rstd[row];
  // dx = s * (g - mean(g) - xhat * mean(g * xhat)) with g = dout * w.
  float g_sum = 0, gx_sum = 0;
  for (int j = threadIdx.x; j < C; j += blockDim.x) {
    const float g = di[j] * w[j];
    g_sum += g;
    gx_sum += g * (xi[j] - m) * s;
  }
  const float g_mean = block_sum(g_sum, shared) / C;
  const float gx_mean = block_sum(gx_sum, shared) / C;
  for (int j = threadIdx.x; j < C; j += blockDim.x) {
    const float xhat = (xi[j] - m) * s;
    dxi[j] += s * (di[j] * w[j] - g_mean - xhat * gx_mean);
  }
}

__global__ void layernorm_params_kernel(float* dw, float* db, const float* dout, const float* x, const float* mean,
                                        const float* rstd, int M, int C) {
  const int j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= C) return;
  float sw = 0, sb = 0;
  for (int i = 0; i < M; ++i) {
    const size_t k = size_t(i) * C + j;
    sw += dout[k] * (x[k] - mean[i]) * rstd[i];
    sb += dout[k];
  }
  dw[j] += sw;
  db[j] += sb;
}
}  // namespace

template <>
void layernorm_forward<float>(float* out, float* mean, float* rstd, const float* x, const float* w, const float* b,
                              int M, int C, float eps) {
  if (M == 0) return;
  layernorm_forward_kernel<<<M, kThreads, 0, compute_stream()>>>(out, mean, rstd, x, w, b, C, eps);
  LORA_CUDA_CHECK_LAUNCH("layernorm_forward_kernel");
}

template <>
void layernorm_backward<float>(float* dx, const float* dout, const float* x, const float* mean, const float* rstd,
                               const float* w, int M, int C) {
  if (M == 0) return;
  layernorm_backward_kernel<<<M, kThreads, 0, compute_stream()>>>(dx, dout, x, mean, rstd, w, C);
  LORA_CUDA_CHECK_LAUNCH("layernorm_backward_kernel");
}

template <>
void layernorm_backward_params<float>(float* dw, float* db, const float* dout, const float* x, const float* mean,
                                      const float* rstd, int M, int C) {
  layernorm_params_kernel<<<(C + kThreads - 1) / kThreads, kThreads, 0, compute_stream()>>>(dw, db, dout, x, mean,
                                                                                           rstd, M, C);
  LORA_CUDA_CHECK_LAUNCH("layernorm_params_kernel");
}

}  // namespace lora::cuda
