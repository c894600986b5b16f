#include <cuda_bf16.h>

#include <algorithm>

#include "model/ops/cuda/cublas_gemm.h"
#include "model/ops/cuda/launch.h"
#include "model/ops/cuda/nf4_dequantize.h"
#include "model/ops/linear.h"

namespace lora::cuda {

namespace {
__global__ void round_to_bf16_kernel(__nv_bfloat16* dst, const float* src, int rows, int cols, int ld) {
  const size_t n = size_t(rows) * cols;
  for (size_t idx = blockIdx.x * size_t(blockDim.x) + threadIdx.x; idx < n; idx += size_t(gridDim.x) * blockDim.x)
    dst[idx] = __float2bfloat16_rn(src[(idx / cols) * ld + idx % cols]);
}

__global__ void add_bias_kernel(float* y, const float* bias, int M, int N) {
  const size_t n = size_t(M) * N;
  for (size_t idx = blockIdx.x * size_t(blockDim.x) + threadIdx.x; idx < n; idx += size_t(gridDim.x) * blockDim.x)
    y[idx] += bias[idx % N];
}

// db[j] += sum over rows of dy[:, j], one thread per column, rows in order.
__global__ void column_sums_kernel(float* db, const float* dy, int M, int N) {
  const int j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= N) return;
  float s = 0;
  for (int i = 0; i < M; ++i) s += dy[size_t(i) * N + j];
  db[j] += s;
}
}  // namespace

void* round_to_bf16(void* dst, const float* src, int rows, int cols, int ld) {
  round_to_bf16_kernel<<<blocks_for(size_t(rows) * cols), kThreads, 0, compute_stream()>>>(
      static_cast<__nv_bfloat16*>(dst), src, rows, cols, ld);
  LORA_CUDA_CHECK_LAUNCH("round_to_bf16_kernel");
  return dst;
}

template <>
void add_bias<float>(float* y, const float* bias, int M, int N) {
  add_bias_kernel<<<blocks_for(size_t(M) * N), kThreads, 0, compute_stream()>>>(y, bias, M, N);
  LORA_CUDA_CHECK_LAUNCH("add_bias_kernel");
}

// A bf16 weight multiplies the bf16-rounded input (scratch slot 0), accumulating in fp32; so
// does an NF4 weight, dequantized to bf16 a block of rows at a time (slot 1), as QLoRA computes
// on a GPU. (The CPU computes NF4 in fp32; the GPU runs bf16 everywhere: a bf16 weight's
// bf16_compute flag is not consulted here.)
template <>
void linear_forward<float>(float* y, const float* x, WeightArg<float> w, const float* bias, int M, int K, int N) {
  if (w.is_bf16()) {
    const void* xb = round_to_bf16(scratch(size_t(M) * K * 2, 0), x, M, K, K);
    gemm_bf16(false, true, M, N, K, 1.0f, xb, K, w.data, K, 0.0f, y, N);
  } else if (w.is_nf4()) {
    const void* xb = round_to_bf16(scratch(size_t(M) * K * 2, 0), x, M, K, K);
    const int nb = frozen_gemm_block_rows(K);
    for (int n0 = 0; n0 < N; n0 += nb) {  // y[:, n0:n1] = xb W[n0:n1]^T
      const int n1 = std::min(N, n0 + nb);
      const void* wb = nf4_dequantize_rows_bf16(scratch(size_t(nb) * K * 2, 1), w.nf4_bytes(), *w.nf4, n0, n1);
      gemm_bf16(false, true, M, n1 - n0, K, 1.0f, xb, K, wb, K, 0.0f, y + n0, N);
    }
  } else {
    gemm(false, true, M, N, K, 1.0f, x, K, w.native(), K, 0.0f, y, N);
  }
  if (bias) add_bias(y, bias, M, N);
}

template <>
void linear_backward_input<float>(float* dx, const float* dy, WeightArg<float> w, int M, int K, int N,
                                  bool accumulate) {
  const float beta = accumulate ? 1.0f : 0.0f;
  if (w.is_bf16()) {
    const void* dyb = round_to_bf16(scratch(size_t(M) * N * 2, 0), dy, M, N, N);
    gemm_bf16(false, false, M, K, N, 1.0f, dyb, N, w.data, K, beta, dx, K);
  } else if (w.is_nf4()) {
    const void* dyb = round_to_bf16(scratch(size_t(M) * N * 2, 0), dy, M, N, N);
    const int nb = frozen_gemm_block_rows(K);
    for (int n0 = 0; n0 < N; n0 += nb) {  // dx (+)= dyb[:, n0:n1] W[n0:n1, :], a block of the sum
      const int n1 = std::min(N, n0 + nb);
      const void* wb = nf4_dequantize_rows_bf16(scratch(size_t(nb) * K * 2, 1), w.nf4_bytes(), *w.nf4, n0, n1);
      gemm_bf16(false, false, M, K, n1 - n0, 1.0f, static_cast<const uint16_t*>(dyb) + n0, N, wb, K,
                n0 > 0 ? 1.0f : beta, dx, K);
    }
  } else {
    gemm(false, false, M, K, N, 1.0f, dy, N, w.native(), K, beta, dx, K);
  }
}

template <>
void linear_backward_weight<float>(float* dW, float* db, const float* dy, const float* x, int M, int K, int N) {
  gemm(true, false, N, K, M, 1.0f, dy, N, x, K, 1.0f, dW, K);
  if (!db) return;
  column_sums_kernel<<<(N + kThreads - 1) / kThreads, kThreads, 0, compute_stream()>>>(db, dy, M, N);
  LORA_CUDA_CHECK_LAUNCH("column_sums_kernel");
}

}  // namespace lora::cuda
