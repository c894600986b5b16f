// Residual connection out = a + b. Its backward is the identity on both inputs, so the
// model carries one running gradient of the residual stream and never calls a backward.
#pragma once
#include <cstddef>

namespace lora {

template <typename T>
void residual_forward(T* out, const T* a, const T* b, size_t n) {
#pragma omp parallel for simd schedule(static)
  for (size_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

// The CUDA twin (model/ops/cuda/residual.cu): the same signatures over device pointers,
// float only; the CPU functions above are the reference it is tested against.
namespace cuda {
template <typename T>
void residual_forward(T* out, const T* a, const T* b, size_t n);
}  // namespace cuda

}  // namespace lora
