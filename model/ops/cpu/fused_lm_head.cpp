// Vector arguments wider than the baseline ABI's draw -Wpsabi notes (see gelu.cpp).
#pragma GCC diagnostic ignored "-Wpsabi"

#include "model/ops/cpu/fused_lm_head.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstddef>
#include <cstring>
#include <type_traits>
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

namespace {

// A row's maximum, and the row overwritten with exp(x - m) and summed: scalar for double (the
// gradient checks, libm's exp), W-lane vectors for float (fast_math.h's vexp_lanes; x - m <= 0,
// below -87 it is 0 as the scalar vexp gives). The sum adds W partial sums, then the tail.
struct ScalarRow {
  template <typename T>
  static inline T max(const T* x, int n) {
    T m = -std::numeric_limits<T>::infinity();
    for (int j = 0; j < n; ++j) m = x[j] > m ? x[j] : m;
    return m;
  }
  template <typename T>
  static inline T exp_sum(T* x, int n, T m) {
    T sum = 0;
    for (int j = 0; j < n; ++j) {
      const T p = vexp(x[j] - m);
      x[j] = p;
      sum += p;
    }
    return sum;
  }
};

template <int W>
struct RowLanes {
  using F = typename FloatVec<W>::f;
  using I = typename FloatVec<W>::i;
  __attribute__((always_inline)) static inline float max(const float* x, int n) {
    F m = F{} - std::numeric_limits<float>::infinity();
    int j = 0;
    for (; j + W <= n; j += W) {
      F v;
      std::memcpy(&v, x + j, sizeof v);
      m = v > m ? v : m;
    }
    float r = -std::numeric_limits<float>::infinity();
    for (int l = 0; l < W; ++l) r = m[l] > r ? m[l] : r;
    for (; j < n; ++j) r = x[j] > r ? x[j] : r;
    return r;
  }
  __attribute__((always_inline)) static inline F exp_shifted(const F& v, float m) {
    const F d = v - m;
    const F e = vexp_lanes<F, I>(clamp_lanes(d, -87.0f, 88.0f));
    return d < -87.0f ? F{} : e;
  }
  __attribute__((always_inline)) static inline float exp_sum(float* x, int n, float m) {
    F s{};
    int j = 0;
    for (; j + W <= n; j += W) {
      F v;
      std::memcpy(&v, x + j, sizeof v);
      const F e = exp_shifted(v, m);
      std::memcpy(x + j, &e, sizeof e);
      s += e;
    }
    if (j < n) {  // the tail through a vector padded with -inf (exp 0)
      F v = F{} - std::numeric_limits<float>::infinity();
      std::memcpy(&v, x + j, (n - j) * sizeof(float));
      const F e = exp_shifted(v, m);
      std::memcpy(x + j, &e, (n - j) * sizeof(float));
      s += e;
    }
    float sum = 0;
    for (int l = 0; l < W; ++l) sum += s[l];
    return sum;
  }
};

// One row of lm_tile_online_softmax (see fused_lm_head.h), with Row's max and exp_sum.
template <class Row, typename T>
__attribute__((always_inline)) inline void online_softmax_row(T* row, int cols, int t, T* run_max, T* run_stats,
                                                              T* acc_row, int d, bool first) {
  const T mt = Row::max(row, cols);
  const T m_old = first ? -std::numeric_limits<T>::infinity() : *run_max;
  const T m_new = mt > m_old ? mt : m_old;
  T tgt = first ? T(0) : run_stats[1];
  if (t >= 0 && t < cols) tgt = row[t];
  const T sum = Row::exp_sum(row, cols, m_new);
  if (first) {
    run_stats[0] = sum;
  } else {
    const T scale = m_new > m_old ? static_cast<T>(std::exp(m_old - m_new)) : T(1);
    run_stats[0] = run_stats[0] * scale + sum;
    if (acc_row && scale != T(1))
      for (int k = 0; k < d; ++k) acc_row[k] *= scale;
  }
  run_stats[1] = tgt;
  *run_max = m_new;
}

// One function per width with its own parallel region, as gelu.cpp's (the vector kernels
// must be inlined into a function of their target).
#define LORA_LM_SOFTMAX_TARGET(NAME, ROW, T, ATTR)                                                                \
  ATTR void NAME(T* tile, int rows, int cols, int c0, const int32_t* target_local, T* run_max, T* run_stats,      \
                 T* acc, int d, bool first) {                                                                     \
    _Pragma("omp parallel for schedule(static)") for (int i = 0; i < rows; ++i) {                                 \
      online_softmax_row<ROW, T>(tile + static_cast<size_t>(i) * cols, cols, target_local[i] - c0, run_max + i,   \
                                 run_stats + 2 * i, acc ? acc + static_cast<size_t>(i) * d : nullptr, d, first); \
    }                                                                                                             \
  }
LORA_LM_SOFTMAX_TARGET(online_softmax_double, ScalarRow, double, )
LORA_LM_SOFTMAX_TARGET(online_softmax4, RowLanes<4>, float, )
#if defined(__x86_64__) || defined(__i386__)
#define LORA_LM_SOFTMAX_X86 1
LORA_LM_SOFTMAX_TARGET(online_softmax8, RowLanes<8>, float, __attribute__((target("avx2,fma"))))
LORA_LM_SOFTMAX_TARGET(online_softmax16, RowLanes<16>, float, __attribute__((target("avx512f"))))
#endif
#undef LORA_LM_SOFTMAX_TARGET

}  // namespace

void lm_tile_online_softmax_lanes(int lanes, float* tile, int rows, int cols, int c0, const int32_t* target_local,
                                  float* run_max, float* run_stats, float* acc, int d, bool first) {
  check_simd_lanes("lm head softmax", lanes);
#ifdef LORA_LM_SOFTMAX_X86
  if (lanes == 16) return online_softmax16(tile, rows, cols, c0, target_local, run_max, run_stats, acc, d, first);
  if (lanes == 8) return online_softmax8(tile, rows, cols, c0, target_local, run_max, run_stats, acc, d, first);
#endif
  online_softmax4(tile, rows, cols, c0, target_local, run_max, run_stats, acc, d, first);
}

template <typename T>
void lm_tile_online_softmax(T* tile, int rows, int cols, int c0, const int32_t* target_local, T* run_max,
                            T* run_stats, T* acc, int d, bool first) {
  if constexpr (std::is_same_v<T, float>)
    lm_tile_online_softmax_lanes(simd_lanes(), tile, rows, cols, c0, target_local, run_max, run_stats, acc, d, first);
  else
    online_softmax_double(tile, rows, cols, c0, target_local, run_max, run_stats, acc, d, first);
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
