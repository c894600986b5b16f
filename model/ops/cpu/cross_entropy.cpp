#include "model/ops/cross_entropy.h"

#include <cmath>

#include "model/ops/cpu/fast_math.h"
#include <cstddef>
#include <limits>

namespace lora {

template <typename T>
void vocab_logits_max(T* row_max, const T* logits, int M, int Vl, int valid) {
#pragma omp parallel for schedule(static)
  for (int i = 0; i < M; ++i) {
    const T* row = logits + static_cast<size_t>(i) * Vl;
    T mx = -std::numeric_limits<T>::infinity();
    for (int j = 0; j < valid; ++j) mx = row[j] > mx ? row[j] : mx;
    row_max[i] = mx;
  }
}

template <typename T>
void vocab_sumexp_and_target(T* stats, const T* logits, const T* row_max, const int32_t* targets, int v0,
                             int M, int Vl, int valid) {
#pragma omp parallel for schedule(static)
  for (int i = 0; i < M; ++i) {
    const T* row = logits + static_cast<size_t>(i) * Vl;
    T sum = 0;
    const T mx = row_max[i];
#pragma omp simd reduction(+ : sum)
    for (int j = 0; j < valid; ++j) sum += vexp(row[j] - mx);
    const int t = targets[i] - v0;
    stats[2 * i] = sum;
    stats[2 * i + 1] = (t >= 0 && t < valid) ? row[t] : T(0);
  }
}

template <typename T>
void vocab_cross_entropy_backward(T* logits, const T* row_max, const T* stats, const int32_t* targets,
                                  const T* weight, int v0, int M, int Vl, int valid) {
#pragma omp parallel for schedule(static)
  for (int i = 0; i < M; ++i) {
    T* row = logits + static_cast<size_t>(i) * Vl;
    const T w = weight[i];
    const T inv = w / stats[2 * i];
    const T mx = row_max[i];
#pragma omp simd
    for (int j = 0; j < valid; ++j) row[j] = vexp(row[j] - mx) * inv;
    for (int j = valid; j < Vl; ++j) row[j] = 0;
    const int t = targets[i] - v0;
    if (t >= 0 && t < valid) row[t] -= w;
  }
}

#define LORA_INSTANTIATE(T)                                                                              \
  template void vocab_logits_max<T>(T*, const T*, int, int, int);                                       \
  template void vocab_sumexp_and_target<T>(T*, const T*, const T*, const int32_t*, int, int, int, int); \
  template void vocab_cross_entropy_backward<T>(T*, const T*, const T*, const int32_t*, const T*, int, int, int, int);
LORA_INSTANTIATE(float)
LORA_INSTANTIATE(double)

}  // namespace lora
