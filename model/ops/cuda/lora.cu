#include "model/ops/cuda/cublas_gemm.h"
#include "model/ops/lora.h"

// The rank-r GEMMs in fp32 through cuBLAS, the same products in the same order as the CPU's.
namespace lora::cuda {

template <>
void lora_down_forward<float>(float* u, const float* x, const float* A, int M, int K, int r) {
  gemm(false, true, M, r, K, 1.0f, x, K, A, K, 0.0f, u, r);
}

template <>
void lora_forward<float>(float* y, int ldy, float* u, const float* x, const float* A, const float* B, int M, int K,
                         int N, int r, float s) {
  lora_down_forward(u, x, A, M, K, r);
  gemm(false, true, M, N, r, s, u, r, B, r, 1.0f, y, ldy);
}

template <>
void lora_backward<float>(float* dx, float* dA, float* dB, float* du, const float* dy, int ldy, const float* x,
                          const float* u, const float* A, const float* B, int M, int K, int N, int r, float s) {
  gemm(false, false, M, r, N, s, dy, ldy, B, r, 0.0f, du, r);
  gemm(true, false, N, r, M, s, dy, ldy, u, r, 1.0f, dB, r);
  gemm(true, false, r, K, M, 1.0f, du, r, x, K, 1.0f, dA, K);
  if (dx) gemm(false, false, M, K, r, 1.0f, du, r, A, K, 1.0f, dx, K);
}

template <>
void lora_merge<float>(float* W, const float* A, const float* B, int K, int N, int r, float s) {
  gemm(false, false, N, K, r, s, B, r, A, K, 1.0f, W, K);
}

}  // namespace lora::cuda
