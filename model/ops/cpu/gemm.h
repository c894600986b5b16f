// Row-major GEMM for float and double over OpenBLAS: C = alpha * op(A) op(B) + beta * C.
// Weights are stored [out x in] as in PyTorch and llm.c, so a forward is NT,
// an input gradient NN and a weight gradient TN.
#pragma once
#include <cblas.h>
#include <omp.h>

#include <algorithm>

#include "model/ops/gemm_clock.h"

namespace lora {

inline void gemm(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda,
                 const float* B, int ldb, float beta, float* C, int ldc) {
  GemmTimed timed;
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K,
              alpha, A, lda, B, ldb, beta, C, ldc);
}

inline void gemm(bool ta, bool tb, int M, int N, int K, double alpha, const double* A, int lda,
                 const double* B, int ldb, double beta, double* C, int ldc) {
  GemmTimed timed;
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K,
              alpha, A, lda, B, ldb, beta, C, ldc);
}

// The same product with C split into one block per OpenMP thread, each block a
// one-thread BLAS call. For the skinny rank-r LoRA GEMMs this is 1.5-5x faster than
// OpenBLAS's own threading (../shared/anchors README, "split" rows). C is split along
// its longer side; inside a parallel region OpenBLAS's OpenMP build runs serially.
template <typename T>
void gemm_split(bool ta, bool tb, int M, int N, int K, T alpha, const T* A, int lda, const T* B, int ldb,
                T beta, T* C, int ldc) {
  const int threads = std::min(omp_get_max_threads(), std::max(M, N) / 16);
  if (threads <= 1 || omp_in_parallel()) {
    gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
    if (M >= N) {  // rows of C: rows of op(A)
      const int m0 = M * t / nt, m1 = M * (t + 1) / nt;
      const T* a = ta ? A + m0 : A + static_cast<size_t>(m0) * lda;
      if (m1 > m0) gemm(ta, tb, m1 - m0, N, K, alpha, a, lda, B, ldb, beta, C + static_cast<size_t>(m0) * ldc, ldc);
    } else {  // columns of C: columns of op(B)
      const int n0 = N * t / nt, n1 = N * (t + 1) / nt;
      const T* b = tb ? B + static_cast<size_t>(n0) * ldb : B + n0;
      if (n1 > n0) gemm(ta, tb, M, n1 - n0, K, alpha, A, lda, b, ldb, beta, C + n0, ldc);
    }
  }
}

}  // namespace lora
