#include "model/ops/linear.h"

#include <cstddef>

#include "model/ops/cpu/frozen_gemm.h"
#include "model/ops/cpu/gemm.h"

namespace lora {

template <typename T>
void linear_forward(T* y, const T* x, WeightArg<T> w, const T* bias, int M, int K, int N) {
  frozen_gemm_forward(y, x, w, M, K, N);
  if (bias) add_bias(y, bias, M, N);
}

template <typename T>
void linear_backward_input(T* dx, const T* dy, WeightArg<T> w, int M, int K, int N, bool accumulate) {
  frozen_gemm_backward_input(dx, dy, w, M, K, N, accumulate);
}

template <typename T>
void linear_backward_weight(T* dW, T* db, const T* dy, const T* x, int M, int K, int N) {
  gemm(true, false, N, K, M, T(1), dy, N, x, K, T(1), dW, K);
  if (!db) return;
#pragma omp parallel for schedule(static)
  for (int j = 0; j < N; ++j) {
    T s = 0;
    for (int i = 0; i < M; ++i) s += dy[static_cast<size_t>(i) * N + j];
    db[j] += s;
  }
}

template <typename T>
void add_bias(T* y, const T* bias, int M, int N) {
#pragma omp parallel for schedule(static)
  for (int i = 0; i < M; ++i) {
    T* row = y + static_cast<size_t>(i) * N;
    for (int j = 0; j < N; ++j) row[j] += bias[j];
  }
}

#define LORA_INSTANTIATE(T)                                                                      \
  template void linear_forward<T>(T*, const T*, WeightView<T>, const T*, int, int, int);        \
  template void linear_backward_input<T>(T*, const T*, WeightView<T>, int, int, int, bool);     \
  template void linear_backward_weight<T>(T*, T*, const T*, const T*, int, int, int); \
  template void add_bias<T>(T*, const T*, int, int);
LORA_INSTANTIATE(float)
LORA_INSTANTIATE(double)

}  // namespace lora
