#include "model/ops/gelu.h"

#include "model/ops/cpu/fast_math.h"

namespace lora {

namespace {
constexpr double kSqrt2OverPi = 0.7978845608028654;
}

template <typename T>
void gelu_forward(T* out, const T* x, size_t n) {
#pragma omp parallel for simd schedule(static)
  for (size_t i = 0; i < n; ++i) {
    const T v = x[i];
    out[i] = T(0.5) * v * (T(1) + vtanh(T(kSqrt2OverPi) * (v + T(0.044715) * v * v * v)));
  }
}

template <typename T>
void gelu_backward(T* dx, const T* dout, const T* x, size_t n) {
#pragma omp parallel for simd schedule(static)
  for (size_t i = 0; i < n; ++i) {
    const T v = x[i];
    const T inner = T(kSqrt2OverPi) * (v + T(0.044715) * v * v * v);
    const T th = vtanh(inner);
    const T dinner = T(kSqrt2OverPi) * (T(1) + T(3 * 0.044715) * v * v);
    dx[i] = dout[i] * (T(0.5) * (T(1) + th) + T(0.5) * v * (T(1) - th * th) * dinner);
  }
}

template void gelu_forward<float>(float*, const float*, size_t);
template void gelu_forward<double>(double*, const double*, size_t);
template void gelu_backward<float>(float*, const float*, const float*, size_t);
template void gelu_backward<double>(double*, const double*, const double*, size_t);

}  // namespace lora
