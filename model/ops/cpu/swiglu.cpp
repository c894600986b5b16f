#include "model/ops/swiglu.h"

#include <cmath>

namespace lora {

namespace {
template <typename T>
T sigmoid(T a) {
  return T(1) / (T(1) + std::exp(-a));
}
}  // namespace

template <typename T>
void swiglu_forward(T* out, const T* gate, const T* up, size_t n) {
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; ++i) out[i] = gate[i] * sigmoid(gate[i]) * up[i];
}

template <typename T>
void swiglu_backward(T* dgate, T* dup, const T* dout, const T* gate, const T* up, size_t n) {
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; ++i) {
    const T a = gate[i], s = sigmoid(a);
    dup[i] = dout[i] * a * s;
    dgate[i] = dout[i] * up[i] * s * (T(1) + a * (T(1) - s));
  }
}

template void swiglu_forward<float>(float*, const float*, const float*, size_t);
template void swiglu_forward<double>(double*, const double*, const double*, size_t);
template void swiglu_backward<float>(float*, float*, const float*, const float*, const float*, size_t);
template void swiglu_backward<double>(double*, double*, const double*, const double*, const double*, size_t);

}  // namespace lora
