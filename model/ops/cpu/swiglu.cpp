#include "model/ops/swiglu.h"

#include <cmath>
#include <cstddef>

namespace lora {

namespace {
template <typename T>
T sigmoid(T a) {
  return T(1) / (T(1) + std::exp(-a));
}
}  // namespace

template <typename T>
void swiglu_forward(T* out, const T* h, int M, int F) {
#pragma omp parallel for schedule(static)
  for (int i = 0; i < M; ++i) {
    const T *gate = h + static_cast<size_t>(i) * 2 * F, *up = gate + F;
    T* o = out + static_cast<size_t>(i) * F;
    for (int j = 0; j < F; ++j) o[j] = gate[j] * sigmoid(gate[j]) * up[j];
  }
}

template <typename T>
void swiglu_backward(T* dh, const T* dout, const T* h, int M, int F) {
#pragma omp parallel for schedule(static)
  for (int i = 0; i < M; ++i) {
    const T *gate = h + static_cast<size_t>(i) * 2 * F, *up = gate + F, *d = dout + static_cast<size_t>(i) * F;
    T *dgate = dh + static_cast<size_t>(i) * 2 * F, *dup = dgate + F;
    for (int j = 0; j < F; ++j) {
      const T a = gate[j], s = sigmoid(a);
      dup[j] = d[j] * a * s;
      dgate[j] = d[j] * up[j] * s * (T(1) + a * (T(1) - s));
    }
  }
}

template void swiglu_forward<float>(float*, const float*, int, int);
template void swiglu_forward<double>(double*, const double*, int, int);
template void swiglu_backward<float>(float*, const float*, const float*, int, int);
template void swiglu_backward<double>(double*, const double*, const double*, int, int);

}  // namespace lora
