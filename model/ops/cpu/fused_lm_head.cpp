#include "model/ops/cpu/fused_lm_head.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstddef>
#include <limits>

#include "model/ops/cpu/fast_math.h"

namespace lora {

LmTileShape lm_tile_shape() {
  static const LmTileShape shape = [] {
    LmTileShape s{kLmTileRows, kLmTileCols};
    const char* env = std::getenv("LORA_LM_TILE");
    int r = 0, c = 0;
    if (env && std::sscanf(env, "%dx%d", &r, &c) == 2 && r > 0 && c > 0) s = {r, c};
    return s;
  }();
  return shape;
}

template <typename T>
void lm_tile_online_softmax(T* tile, int rows, int cols, int c0, const int32_t* target_local, T* run_max,
                            T* run_stats, T* acc, int d, bool first) {
#pragma omp parallel for schedule(static)
  for (int i = 0; i < rows; ++i) {
    T* row = tile + static_cast<size_t>(i) * cols;
    const T mt = row_max(row, cols);
    const T m_old = first ? -std::numeric_limits<T>::infinity() : run_max[i];
    const T m_new = mt > m_old ? mt : m_old;
    const int t = target_local[i] - c0;
    T tgt = first ? T(0) : run_stats[2 * i + 1];
    if (t >= 0 && t < cols) tgt = row[t];
    const T sum = exp_shifted_sum(row, cols, m_new);  // the row becomes exp(logit - m_new)
    if (first) {
      run_stats[2 * i] = sum;
    } else {
      const T scale = m_new > m_old ? static_cast<T>(std::exp(m_old - m_new)) : T(1);
      run_stats[2 * i] = run_stats[2 * i] * scale + sum;
      if (acc && scale != T(1)) {
        T* a = acc + static_cast<size_t>(i) * d;
#pragma omp simd
        for (int k = 0; k < d; ++k) a[k] *= scale;
      }
    }
    run_stats[2 * i + 1] = tgt;
    run_max[i] = m_new;
  }
}

template <typename T>
void lm_rows_finalize(T* acc, int rows, int d, const T* local_max, const T* global_max, const T* stats,
                      const T* weight, const int32_t* target_local, int valid, WeightView<T> head) {
#pragma omp parallel for schedule(static)
  for (int i = 0; i < rows; ++i) {
    T* a = acc + static_cast<size_t>(i) * d;
    const T w = weight[i];
    // A rank whose slice has no real column (local_max -inf) contributes nothing but the target.
    const T c = local_max[i] == -std::numeric_limits<T>::infinity()
                    ? T(0)
                    : static_cast<T>(std::exp(local_max[i] - global_max[i])) * w / stats[2 * i];
#pragma omp simd
    for (int k = 0; k < d; ++k) a[k] *= c;
    const int t = target_local[i];
    if (t < 0 || t >= valid) continue;
    const size_t base = static_cast<size_t>(t) * d;
    for (int k = 0; k < d; ++k) a[k] -= w * head.at(base + k);
  }
}

#define LORA_FUSED_LM_INSTANTIATE(T)                                                                                       \
  template void lm_tile_online_softmax<T>(T*, int, int, int, const int32_t*, T*, T*, T*, int, bool);             \
  template void lm_rows_finalize<T>(T*, int, int, const T*, const T*, const T*, const T*, const int32_t*, int, \
                                    WeightView<T>);
LORA_FUSED_LM_INSTANTIATE(float)
LORA_FUSED_LM_INSTANTIATE(double)
#undef LORA_FUSED_LM_INSTANTIATE

}  // namespace lora
