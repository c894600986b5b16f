#include "model/ops/dropout.h"

#include <cstddef>

#include "model/rng.h"

namespace lora {

namespace {
// One Philox call yields the keep flags of 4 consecutive global features.
inline bool keep(const DropoutKey& k, int row, int col, float p) {
  const uint32_t feature = k.first_feature + static_cast<uint32_t>(col);
  const auto r = philox(k.seed, static_cast<uint32_t>(RngPurpose::Dropout) << 24 | k.site, k.step,
                        k.first_token + static_cast<uint32_t>(row), feature / 4);
  return uniform01(r[feature % 4]) >= p;
}

template <typename T, typename F>
void for_each_kept(int M, int K, float p, const DropoutKey& key, F f) {
#pragma omp parallel for schedule(static)
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < K; ++j) f(static_cast<size_t>(i) * K + j, keep(key, i, j, p));
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
