// Row-major GEMMs over cuBLAS (column-major), the twin of model/ops/cpu/gemm.h:
// C = alpha op(A) op(B) + beta C. A row-major C is a column-major C^T = op(B)^T op(A)^T, so
// each call swaps the operands and passes the dimensions as N, M. All on the compute stream.
#pragma once
#include <cublas_v2.h>

#include "model/ops/cuda/cuda_check.h"
#include "model/ops/cuda/device.h"

namespace lora::cuda {

// fp32 in, fp32 accumulation and out (cuBLAS's default math: no TF32).
inline void gemm(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda, const float* B, int ldb,
                 float beta, float* C, int ldc) {
  if (M == 0 || N == 0) return;
  LORA_CUDA_CHECK(cublasSgemm(cublas(), tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K, &alpha,
                              B, ldb, A, lda, &beta, C, ldc));
}

// bf16 A and B (raw bf16 bits), fp32 accumulation and fp32 C: the frozen-weight GEMMs of
// model.dtype bf16 (DESIGN §7).
inline void gemm_bf16(bool ta, bool tb, int M, int N, int K, float alpha, const void* A, int lda, const void* B,
                      int ldb, float beta, float* C, int ldc) {
  if (M == 0 || N == 0) return;
  LORA_CUDA_CHECK(cublasGemmEx(cublas(), tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K,
                               &alpha, B, CUDA_R_16BF, ldb, A, CUDA_R_16BF, lda, &beta, C, CUDA_R_32F, ldc,
                               CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

// dst[rows x cols] = src (row stride ld) rounded to bf16, round-to-nearest-even as
// float_to_bf16 (model/dtype.h) rounds on the CPU. Returns dst.
void* round_to_bf16(void* dst, const float* src, int rows, int cols, int ld);

}  // namespace lora::cuda
