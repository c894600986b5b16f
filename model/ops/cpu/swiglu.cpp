// Vector arguments wider than the baseline ABI's draw -Wpsabi notes about fast_math.h's lines,
// so before it is included: the kernels are always inlined into a function of their target,
// and no call passes one.
#pragma GCC diagnostic ignored "-Wpsabi"

#include "model/ops/swiglu.h"

#include <cmath>
#include <cstddef>
#include <cstring>
#include <type_traits>

#include "model/ops/cpu/fast_math.h"

namespace lora {

namespace {
template <typename T>
T swiglu_sigmoid(T a) {
  return T(1) / (T(1) + std::exp(-a));
}

// The float pass on W-lane vectors, the same pattern as the GELU's (model/ops/cpu/gelu.cpp):
// one source for SSE2 (4 lanes), AVX2 + FMA (8) and AVX-512F (16), chosen at run time
// (simd_lanes()), each row's last F % W columns through a zero-padded vector.
// sigmoid(a) = 1 / (1 + e^-a) with e^-a taken on -a clamped to [-87, 87] and s set to 0 for
// a < -87 (e^a < 1.7e-38 there); 1 - s = e^-a s, without the cancellation of 1 - s near s = 1,
// and 0 for a > 87.
// NaN in gate or up gives NaN out, as std::exp's form does.
template <int W>
struct SwigluLanes {
  using F = typename FloatVec<W>::f;
  using I = typename FloatVec<W>::i;

  __attribute__((always_inline)) static inline void logistic(const F& a, F& s, F& one_minus_s) {
    const F e = vexp_lanes<F, I>(clamp_lanes(-a, -87.0f, 87.0f));
    s = 1.0f / (1.0f + e);
    s = a < -87.0f ? F{} : s;
    one_minus_s = a > 87.0f ? F{} : e * s;  // past the clamp e is not e^-a: a (1 - s) would not vanish
  }

  __attribute__((always_inline)) static inline void load(F& v, const float* p, int m) {
    if (m == W) {
      std::memcpy(&v, p, sizeof v);
    } else {
      v = F{};
      std::memcpy(&v, p, m * sizeof(float));
    }
  }
  __attribute__((always_inline)) static inline void store(float* p, const F& v, int m) {
    std::memcpy(p, &v, m * sizeof(float));
  }

  __attribute__((always_inline)) static inline void forward_row(float* o, const float* gate, const float* up, int Fw) {
    for (int j = 0; j < Fw; j += W) {
      const int m = Fw - j < W ? Fw - j : W;
      F a, u, s, q;
      load(a, gate + j, m);
      load(u, up + j, m);
      logistic(a, s, q);
      const F y = (a * s) * u;
      store(o + j, y, m);
    }
  }

  __attribute__((always_inline)) static inline void backward_row(float* dgate, float* dup, const float* d,
                                                                 const float* gate, const float* up, int Fw) {
    for (int j = 0; j < Fw; j += W) {
      const int m = Fw - j < W ? Fw - j : W;
      F a, u, g, s, q;
      load(a, gate + j, m);
      load(u, up + j, m);
      load(g, d + j, m);
      logistic(a, s, q);
      const F silu = a * s;  // first: a huge a times s = 0 is 0, not g a = inf times 0
      const F du = g * silu;
      const F dg = (g * u) * (s * (1.0f + a * q));
      store(dup + j, du, m);
      store(dgate + j, dg, m);
    }
  }
};

// One function per target, each with its own parallel region (see gelu.cpp for why).
#define LORA_SWIGLU_TARGET(W, ATTR)                                                                 \
  ATTR void swiglu_forward##W(float* out, const float* h, int M, int Fw) {                          \
    _Pragma("omp parallel for schedule(static)") for (int i = 0; i < M; ++i) {                      \
      const float* gate = h + static_cast<size_t>(i) * 2 * Fw;                                      \
      SwigluLanes<W>::forward_row(out + static_cast<size_t>(i) * Fw, gate, gate + Fw, Fw);          \
    }                                                                                               \
  }                                                                                                 \
  ATTR void swiglu_backward##W(float* dh, const float* dout, const float* h, int M, int Fw) {       \
    _Pragma("omp parallel for schedule(static)") for (int i = 0; i < M; ++i) {                      \
      const float* gate = h + static_cast<size_t>(i) * 2 * Fw;                                      \
      float* dgate = dh + static_cast<size_t>(i) * 2 * Fw;                                          \
      SwigluLanes<W>::backward_row(dgate, dgate + Fw, dout + static_cast<size_t>(i) * Fw, gate, gate + Fw, Fw); \
    }                                                                                               \
  }
LORA_SWIGLU_TARGET(4, )
#if defined(__x86_64__) || defined(__i386__)
#define LORA_SWIGLU_X86 1
LORA_SWIGLU_TARGET(8, __attribute__((target("avx2,fma"))))
LORA_SWIGLU_TARGET(16, __attribute__((target("avx512f"))))
#endif
#undef LORA_SWIGLU_TARGET
}  // namespace

void swiglu_forward_lanes(int lanes, float* out, const float* h, int M, int F) {
  check_simd_lanes("swiglu", lanes);
#ifdef LORA_SWIGLU_X86
  if (lanes == 16) return swiglu_forward16(out, h, M, F);
  if (lanes == 8) return swiglu_forward8(out, h, M, F);
#endif
  swiglu_forward4(out, h, M, F);
}

void swiglu_backward_lanes(int lanes, float* dh, const float* dout, const float* h, int M, int F) {
  check_simd_lanes("swiglu", lanes);
#ifdef LORA_SWIGLU_X86
  if (lanes == 16) return swiglu_backward16(dh, dout, h, M, F);
  if (lanes == 8) return swiglu_backward8(dh, dout, h, M, F);
#endif
  swiglu_backward4(dh, dout, h, M, F);
}

// Float: the vector kernels at the widest width. Double (the gradient checks): libm's exp.
template <typename T>
void swiglu_forward(T* out, const T* h, int M, int F) {
  if constexpr (std::is_same_v<T, float>) {
    swiglu_forward_lanes(simd_lanes(), out, h, M, F);
  } else {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < M; ++i) {
      const T *gate = h + static_cast<size_t>(i) * 2 * F, *up = gate + F;
      T* o = out + static_cast<size_t>(i) * F;
      for (int j = 0; j < F; ++j) o[j] = gate[j] * swiglu_sigmoid(gate[j]) * up[j];
    }
  }
}

template <typename T>
void swiglu_backward(T* dh, const T* dout, const T* h, int M, int F) {
  if constexpr (std::is_same_v<T, float>) {
    swiglu_backward_lanes(simd_lanes(), dh, dout, h, M, F);
  } else {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < M; ++i) {
      const T *gate = h + static_cast<size_t>(i) * 2 * F, *up = gate + F, *d = dout + static_cast<size_t>(i) * F;
      T *dgate = dh + static_cast<size_t>(i) * 2 * F, *dup = dgate + F;
      for (int j = 0; j < F; ++j) {
        const T a = gate[j], s = swiglu_sigmoid(a);
        dup[j] = d[j] * a * s;
        dgate[j] = d[j] * up[j] * s * (T(1) + a * (T(1) - s));
      }
    }
  }
}

template void swiglu_forward<float>(float*, const float*, int, int);
template void swiglu_forward<double>(double*, const double*, int, int);
template void swiglu_backward<float>(float*, const float*, const float*, int, int);
template void swiglu_backward<double>(double*, const double*, const double*, int, int);

}  // namespace lora
