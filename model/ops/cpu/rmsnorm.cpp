#include "model/ops/rmsnorm.h"

#include <cmath>
#include <cstddef>

namespace lora {

template <typename T>
void rmsnorm_forward(T* out, T* rrms, const T* x, const T* w, int M, int C, float eps) {
#pragma omp parallel for schedule(static)
  for (int i = 0; i < M; ++i) {
    const T* xi = x + static_cast<size_t>(i) * C;
    T* oi = out + static_cast<size_t>(i) * C;
    T ss = 0;
    for (int j = 0; j < C; ++j) ss += xi[j] * xi[j];
    const T r = T(1) / std::sqrt(ss / C + T(eps));
    for (int j = 0; j < C; ++j) oi[j] = xi[j] * r * w[j];
    rrms[i] = r;
  }
}

template <typename T>
void rmsnorm_backward(T* dx, const T* dout, const T* x, const T* rrms, const T* w, int M, int C) {
#pragma omp parallel for schedule(static)
  for (int i = 0; i < M; ++i) {
    const T* xi = x + static_cast<size_t>(i) * C;
    const T* di = dout + static_cast<size_t>(i) * C;
    T* dxi = dx + static_cast<size_t>(i) * C;
    const T r = rrms[i];
    T gx_mean = 0;  // mean(g * x), g = dout * w
    for (int j = 0; j < C; ++j) gx_mean += di[j] * w[j] * xi[j];
    gx_mean /= C;
    for (int j = 0; j < C; ++j) dxi[j] += r * (di[j] * w[j] - xi[j] * r * r * gx_mean);
  }
}

template <typename T>
void rmsnorm_backward_weight(T* dw, const T* dout, const T* x, const T* rrms, int M, int C) {
  // Threads own columns: every row adds to every column, so splitting rows would race.
#pragma omp parallel for schedule(static)
  for (int j = 0; j < C; ++j) {
    T s = 0;
    for (int i = 0; i < M; ++i) {
      const size_t k = static_cast<size_t>(i) * C + j;
      s += dout[k] * x[k] * rrms[i];
    }
    dw[j] += s;
  }
}

template void rmsnorm_forward<float>(float*, float*, const float*, const float*, int, int, float);
template void rmsnorm_forward<double>(double*, double*, const double*, const double*, int, int, float);
template void rmsnorm_backward<float>(float*, const float*, const float*, const float*, const float*, int, int);
template void rmsnorm_backward<double>(double*, const double*, const double*, const double*, const double*, int, int);
template void rmsnorm_backward_weight<float>(float*, const float*, const float*, const float*, int, int);
template void rmsnorm_backward_weight<double>(double*, const double*, const double*, const double*, int, int);

}  // namespace lora
