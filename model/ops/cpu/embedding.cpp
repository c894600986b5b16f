#include "model/ops/embedding.h"

#include <cstddef>
#include <cstring>

namespace lora {

template <typename T>
void embedding_forward(T* x, const int32_t* tokens, const T* wte_local, int v0, int Vl, int M, int d) {
#pragma omp parallel for schedule(static)
  for (int i = 0; i < M; ++i) {
    T* row = x + static_cast<size_t>(i) * d;
    const int local = tokens[i] - v0;
    if (local >= 0 && local < Vl)
      std::memcpy(row, wte_local + static_cast<size_t>(local) * d, sizeof(T) * d);
    else
      std::memset(row, 0, sizeof(T) * d);
  }
}

template <typename T>
void add_positions(T* x, const T* wpe, int B, int Tn, int d) {
#pragma omp parallel for schedule(static)
  for (int i = 0; i < B * Tn; ++i) {
    T* row = x + static_cast<size_t>(i) * d;
    const T* pos = wpe + static_cast<size_t>(i % Tn) * d;
    for (int j = 0; j < d; ++j) row[j] += pos[j];
  }
}

template void embedding_forward<float>(float*, const int32_t*, const float*, int, int, int, int);
template void embedding_forward<double>(double*, const int32_t*, const double*, int, int, int, int);
template void add_positions<float>(float*, const float*, int, int, int);
template void add_positions<double>(double*, const double*, int, int, int);

}  // namespace lora
