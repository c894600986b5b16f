#include "model/ops/lora.h"

#include "model/ops/cpu/gemm.h"

namespace lora {

template <typename T>
void lora_down_forward(T* u, const T* x, const T* A, int M, int K, int r) {
  gemm_split(false, true, M, r, K, T(1), x, K, A, K, T(0), u, r);
}

template <typename T>
void lora_forward(T* y, int ldy, T* u, const T* x, const T* A, const T* B, int M, int K, int N, int r, T s) {
  lora_down_forward(u, x, A, M, K, r);
  gemm_split(false, true, M, N, r, s, u, r, B, r, T(1), y, ldy);
}

template <typename T>
void lora_backward(T* dx, T* dA, T* dB, T* du, const T* dy, int ldy, const T* x, const T* u, const T* A,
                   const T* B, int M, int K, int N, int r, T s) {
  gemm_split(false, false, M, r, N, s, dy, ldy, B, r, T(0), du, r);
  gemm_split(true, false, N, r, M, s, dy, ldy, u, r, T(1), dB, r);
  gemm_split(true, false, r, K, M, T(1), du, r, x, K, T(1), dA, K);
  if (dx) gemm_split(false, false, M, K, r, T(1), du, r, A, K, T(1), dx, K);
}

template <typename T>
void lora_merge(T* W, const T* A, const T* B, int K, int N, int r, T s) {
  gemm(false, false, N, K, r, s, B, r, A, K, T(1), W, K);
}

#define LORA_INSTANTIATE(T)                                                                           \
  template void lora_forward<T>(T*, int, T*, const T*, const T*, const T*, int, int, int, int, T);   \
  template void lora_down_forward<T>(T*, const T*, const T*, int, int, int);                         \
  template void lora_backward<T>(T*, T*, T*, T*, const T*, int, const T*, const T*, const T*,        \
                                 const T*, int, int, int, int, T);                                   \
  template void lora_merge<T>(T*, const T*, const T*, int, int, int, T);
LORA_INSTANTIATE(float)
LORA_INSTANTIATE(double)

}  // namespace lora
