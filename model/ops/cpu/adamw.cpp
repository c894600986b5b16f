#include "model/ops/adamw.h"

#include <cmath>

namespace lora {

template <typename T>
void adamw_update(T* params, const T* grads, T* m, T* v, size_t n, float lr, float beta1, float beta2,
                  float eps, float weight_decay, long t) {
  const T bc1 = T(1) - std::pow(T(beta1), T(t));
  const T bc2_sqrt = std::sqrt(T(1) - std::pow(T(beta2), T(t)));
  const T step_size = T(lr) / bc1;
  const T decay = T(1) - T(lr) * T(weight_decay);
#pragma omp parallel for simd schedule(static)
  for (size_t i = 0; i < n; ++i) {
    const T g = grads[i];
    m[i] = T(beta1) * m[i] + (T(1) - T(beta1)) * g;
    v[i] = T(beta2) * v[i] + (T(1) - T(beta2)) * g * g;
    const T denom = std::sqrt(v[i]) / bc2_sqrt + T(eps);
    params[i] = params[i] * decay - step_size * m[i] / denom;
  }
}

template void adamw_update<float>(float*, const float*, float*, float*, size_t, float, float, float, float, float, long);
template void adamw_update<double>(double*, const double*, double*, double*, size_t, float, float, float, float, float, long);

}  // namespace lora
