#include "model/ops/embedding.h"

#include <cstddef>
#include <cstring>

namespace lora {

template <typename T>
void embedding_forward(T* x, const int32_t* tokens, WeightArg<T> wte_local, int v0, int Vl, int M, int d) {
#pragma omp parallel for schedule(static)
  for (int i = 0; i < M; ++i) {
    T* row = x + static_cast<size_t>(i) * d;
    const int local = tokens[i] - v0;
    if (local >= 0 && local < Vl && wte_local.is_bf16()) {
      const uint16_t* src = wte_local.bf16() + static_cast<size_t>(local) * d;
      for (int j = 0; j < d; ++j) row[j] = static_cast<T>(bf16_to_float(src[j]));
    } else if (local >= 0 && local < Vl)
      std::memcpy(row, wte_local.native() + static_cast<size_t>(local) * d, sizeof(T) * d);
    else
      std::memset(row, 0, sizeof(T) * d);
  }
}

template <typename T>
void add_positions(T* x, WeightArg<T> wpe, int B, int Tn, int d, int pos0) {
#pragma omp parallel for schedule(static)
  for (int i = 0; i < B * Tn; ++i) {
    T* row = x + static_cast<size_t>(i) * d;
    const size_t p = static_cast<size_t>(pos0 + i % Tn) * d;
    if (wpe.is_bf16())
      for (int j = 0; j < d; ++j) row[j] += static_cast<T>(bf16_to_float(wpe.bf16()[p + j]));
    else
      for (int j = 0; j < d; ++j) row[j] += wpe.native()[p + j];
  }
}

// Threads own columns of the tables: a token repeated in the batch adds to the same row.
template <typename T>
void embedding_backward(T* dwte_local, const T* dx, const int32_t* tokens, int v0, int Vl, int M, int d) {
#pragma omp parallel for schedule(static)
  for (int j = 0; j < d; ++j)
    for (int i = 0; i < M; ++i) {
      const int local = tokens[i] - v0;
      if (local >= 0 && local < Vl) dwte_local[static_cast<size_t>(local) * d + j] += dx[static_cast<size_t>(i) * d + j];
    }
}

template <typename T>
void positions_backward(T* dwpe, const T* dx, int B, int Tn, int d, int pos0) {
#pragma omp parallel for schedule(static)
  for (int j = 0; j < d; ++j)
    for (int i = 0; i < B * Tn; ++i) dwpe[static_cast<size_t>(pos0 + i % Tn) * d + j] += dx[static_cast<size_t>(i) * d + j];
}

template void embedding_backward<float>(float*, const float*, const int32_t*, int, int, int, int);
template void embedding_backward<double>(double*, const double*, const int32_t*, int, int, int, int);
template void positions_backward<float>(float*, const float*, int, int, int, int);
template void positions_backward<double>(double*, const double*, int, int, int, int);
template void embedding_forward<float>(float*, const int32_t*, WeightView<float>, int, int, int, int);
template void embedding_forward<double>(double*, const int32_t*, WeightView<double>, int, int, int, int);
template void add_positions<float>(float*, WeightView<float>, int, int, int, int);
template void add_positions<double>(double*, WeightView<double>, int, int, int, int);

}  // namespace lora
