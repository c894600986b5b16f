#include <cuda_bf16.h>

#include "model/ops/cuda/cublas_gemm.h"
#include "model/ops/cuda/launch.h"
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

// A bf16 weight multiplies the bf16-rounded input (scratch slot 0), accumulating in fp32.
template <>
void linear_forward<float>(float* y, const float* x, WeightArg<float> w, const float* bias, int M, int K, int N) {
  if (w.is_bf16()) {
    const void* xb = round_to_bf16(scratch(size_t(M) * K * 2, 0), x, M, K, K);
    gemm_bf16(false, true, M, N, K, 1.0f, xb, K, w.data, K, 0.0f, y, N);
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
