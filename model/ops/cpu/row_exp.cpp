// Vector arguments wider than the baseline ABI's draw -Wpsabi notes (see gelu.cpp).
#pragma GCC diagnostic ignored "-Wpsabi"

#include <cstring>
#include <limits>

#include "model/ops/cpu/fast_math.h"

namespace lora {

namespace {

// x - m <= 0 is expected (m a maximum, or a log-sum-exp); below -87, e^(x - m) is 0 as the
// scalar vexp gives it; a NaN lane stays NaN.
template <int W>
struct RowLanes {
  using F = typename FloatVec<W>::f;
  using I = typename FloatVec<W>::i;
  __attribute__((always_inline)) static inline F exp_shifted(const F& v, float m) {
    const F d = v - m;
    const F e = vexp_lanes<F, I>(clamp_lanes(d, -87.0f, 88.0f));
    return d < -87.0f ? F{} : e;
  }
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
    if (j < n) {  // the tail through a vector padded with -inf (e^-inf = 0)
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

#define LORA_ROW_EXP_TARGET(W, ATTR)                                                                     \
  ATTR float row_max##W(const float* x, int n) { return RowLanes<W>::max(x, n); }                        \
  ATTR float exp_shifted_sum##W(float* x, int n, float m) { return RowLanes<W>::exp_sum(x, n, m); }
LORA_ROW_EXP_TARGET(4, )
#if defined(__x86_64__) || defined(__i386__)
#define LORA_ROW_EXP_X86 1
LORA_ROW_EXP_TARGET(8, __attribute__((target("avx2,fma"))))
LORA_ROW_EXP_TARGET(16, __attribute__((target("avx512f"))))
#endif
#undef LORA_ROW_EXP_TARGET

using RowMax = float (*)(const float*, int);
using ExpSum = float (*)(float*, int, float);
RowMax row_max_of(int lanes) {
#ifdef LORA_ROW_EXP_X86
  if (lanes == 16) return row_max16;
  if (lanes == 8) return row_max8;
#endif
  return row_max4;
}
ExpSum exp_sum_of(int lanes) {
#ifdef LORA_ROW_EXP_X86
  if (lanes == 16) return exp_shifted_sum16;
  if (lanes == 8) return exp_shifted_sum8;
#endif
  return exp_shifted_sum4;
}

}  // namespace

float row_max(const float* x, int n) {
  static const RowMax f = row_max_of(simd_lanes());
  return f(x, n);
}
float exp_shifted_sum(float* x, int n, float m) {
  static const ExpSum f = exp_sum_of(simd_lanes());
  return f(x, n, m);
}

float row_max_lanes(int lanes, const float* x, int n) {
  check_simd_lanes("row max", lanes);
  return row_max_of(lanes)(x, n);
}
float exp_shifted_sum_lanes(int lanes, float* x, int n, float m) {
  check_simd_lanes("row exp", lanes);
  return exp_sum_of(lanes)(x, n, m);
}

}  // namespace lora
