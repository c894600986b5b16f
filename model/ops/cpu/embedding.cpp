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

template void embedding_forward<float>(float*, const int32_t*, WeightView<float>, int, int, int, int);
template void embedding_forward<double>(double*, const int32_t*, WeightView<double>, int, int, int, int);
template void add_positions<float>(float*, WeightView<float>, int, int, int, int);
template void add_positions<double>(double*, WeightView<double>, int, int, int, int);

}  // namespace lora
