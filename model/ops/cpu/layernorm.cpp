#include "model/ops/layernorm.h"

#include <cmath>
#include <cstddef>

namespace lora {

template <typename T>
void layernorm_forward(T* out, T* mean, T* rstd, const T* x, const T* w, const T* b, int M, int C, float eps) {
#pragma omp parallel for schedule(static)
  for (int i = 0; i < M; ++i) {
    const T* xi = x + static_cast<size_t>(i) * C;
    T* oi = out + static_cast<size_t>(i) * C;
    T m = 0;
    for (int j = 0; j < C; ++j) m += xi[j];
    m /= C;
    T var = 0;
    for (int j = 0; j < C; ++j) var += (xi[j] - m) * (xi[j] - m);
    var /= C;
    const T s = T(1) / std::sqrt(var + T(eps));
    for (int j = 0; j < C; ++j) oi[j] = (xi[j] - m) * s * w[j] + b[j];
    mean[i] = m;
    rstd[i] = s;
  }
}

template <typename T>
void layernorm_backward(T* dx, const T* dout, const T* x, const T* mean, const T* rstd, const T* w, int M, int C) {
#pragma omp parallel for schedule(static)
  for (int i = 0; i < M; ++i) {
    const T* xi = x + static_cast<size_t>(i) * C;
    const T* di = dout + static_cast<size_t>(i) * C;
    T* dxi = dx + static_cast<size_t>(i) * C;
    const T m = mean[i], s = rstd[i];
    // dx = s * (g - mean(g) - xhat * mean(g * xhat)) with g = dout * w.
    T g_mean = 0, gx_mean = 0;
    for (int j = 0; j < C; ++j) {
      const T g = di[j] * w[j];
      g_mean += g;
      gx_mean += g * (xi[j] - m) * s;
    }
    g_mean /= C;
    gx_mean /= C;
    for (int j = 0; j < C; ++j) {
      const T xhat = (xi[j] - m) * s;
      dxi[j] += s * (di[j] * w[j] - g_mean - xhat * gx_mean);
    }
  }
}

template <typename T>
void layernorm_backward_params(T* dw, T* db, const T* dout, const T* x, const T* mean, const T* rstd, int M, int C) {
  // Threads own columns: every row adds to every column, so splitting rows would race.
#pragma omp parallel for schedule(static)
  for (int j = 0; j < C; ++j) {
    T sw = 0, sb = 0;
    for (int i = 0; i < M; ++i) {
      const size_t k = static_cast<size_t>(i) * C + j;
      sw += dout[k] * (x[k] - mean[i]) * rstd[i];
      sb += dout[k];
    }
    dw[j] += sw;
    db[j] += sb;
  }
}

template void layernorm_backward_params<float>(float*, float*, const float*, const float*, const float*, const float*, int,
                                               int);
template void layernorm_backward_params<double>(double*, double*, const double*, const double*, const double*,
                                                const double*, int, int);
template void layernorm_forward<float>(float*, float*, float*, const float*, const float*, const float*, int, int, float);
template void layernorm_forward<double>(double*, double*, double*, const double*, const double*, const double*, int, int, float);
template void layernorm_backward<float>(float*, const float*, const float*, const float*, const float*, const float*, int, int);
template void layernorm_backward<double>(double*, const double*, const double*, const double*, const double*, const double*, int, int);

}  // namespace lora
