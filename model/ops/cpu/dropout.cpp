#include "model/ops/dropout.h"

#include <cstddef>

namespace lora {

namespace {
template <typename T, typename F>
void for_each_kept(int M, int K, float p, const DropoutKey& key, F f) {
#pragma omp parallel for schedule(static)
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < K; ++j) f(static_cast<size_t>(i) * K + j, dropout_keep(key, i, j, p));
}
}  // namespace

template <typename T>
void dropout_forward(T* out, const T* x, int M, int K, float p, const DropoutKey& key) {
  const T scale = T(1) / (T(1) - T(p));
  for_each_kept<T>(M, K, p, key, [&](size_t idx, bool kept) { out[idx] = kept ? x[idx] * scale : T(0); });
}

template <typename T>
void dropout_backward(T* dx, const T* dout, int M, int K, float p, const DropoutKey& key) {
  const T scale = T(1) / (T(1) - T(p));
  for_each_kept<T>(M, K, p, key, [&](size_t idx, bool kept) {
    if (kept) dx[idx] += dout[idx] * scale;
  });
}

template void dropout_forward<float>(float*, const float*, int, int, float, const DropoutKey&);
template void dropout_forward<double>(double*, const double*, int, int, float, const DropoutKey&);
template void dropout_backward<float>(float*, const float*, int, int, float, const DropoutKey&);
template void dropout_backward<double>(double*, const double*, int, int, float, const DropoutKey&);

}  // namespace lora
