// Vector arguments wider than the baseline ABI's draw -Wpsabi notes, about fast_math.h's lines,
// so before it is included: the kernels are always inlined into a function of their target,
// and no call passes one.
#pragma GCC diagnostic ignored "-Wpsabi"

#include "model/ops/gelu.h"

#include <omp.h>

#include <cmath>
#include <cstring>
#include <type_traits>

#include "model/ops/cpu/fast_math.h"

namespace lora {

namespace {
constexpr double kSqrt2OverPi = 0.7978845608028654;
constexpr float kGeluC0 = 0.7978845608028654f, kGeluC1 = 0.044715f;

// Below this many elements one thread does the pass (a parallel region costs a few us).
constexpr size_t kGeluParallelMin = 1 << 15;

// The float kernels, on W-lane vectors. With u = sqrt(2/pi) (x + 0.044715 x^3) and
// s = 0.5 (1 + tanh u) = 1 / (1 + e^-2u), the logistic function of 2u:
//   gelu(x)  = x s
//   gelu'(x) = s + 2 x s (1 - s) sqrt(2/pi) (1 + 3 * 0.044715 x^2),  with 1 - s = e^-2u s.
// This form has no cancellation (1 - tanh^2 near |u| large is 4 s (1 - s), not a difference of
// numbers near 1). u and its derivative are computed on x clamped to [-10, 10]: beyond it
// s is 1 (float) or below 1e-37, and clamping keeps e^-2u in range and x^3 finite (a huge x
// would otherwise give inf * 0 = NaN in the derivative). For x < -10, s is set to 0, so
// gelu is -0 as in the double reference, and its derivative 0. A NaN x gives NaN (the clamp
// keeps NaN lanes, and x s is NaN); x = +inf gives +inf and gelu' 1, x = -inf gives NaN
// (-inf * 0, as the double reference) and gelu' 0 (the reference: NaN).
template <int W>
struct GeluLanes {
  using F = typename FloatVec<W>::f;
  using I = typename FloatVec<W>::i;

  // s and e^-2u s (= 1 - s) for one vector of x.
  __attribute__((always_inline)) static inline void logistic(const F& x, F& xc, F& s, F& one_minus_s) {
    xc = clamp_lanes(x, -10.0f, 10.0f);
    const F u = kGeluC0 * (xc + kGeluC1 * xc * xc * xc);
    const F e = vexp_lanes<F, I>(-2.0f * u);  // |2u| <= 87.3: in range
    s = 1.0f / (1.0f + e);
    s = x < -10.0f ? F{} : s;
    one_minus_s = e * s;
  }

  __attribute__((always_inline)) static inline F forward(const F& x) {
    F xc, s, q;
    logistic(x, xc, s, q);
    return x * s;
  }

  __attribute__((always_inline)) static inline F derivative(const F& x) {
    F xc, s, q;
    logistic(x, xc, s, q);
    const F dinner = kGeluC0 * (1.0f + (3.0f * kGeluC1) * xc * xc);
    const F g = s + 2.0f * xc * (s * q) * dinner;
    return x == x ? g : x;  // NaN in, NaN out (xc is NaN there too; this makes it explicit)
  }

  // Vectors [b0, b1) of x (W floats each).
  __attribute__((always_inline)) static inline void forward_blocks(float* out, const float* x, size_t b0, size_t b1) {
    for (size_t b = b0; b < b1; ++b) {
      F v;
      std::memcpy(&v, x + b * W, sizeof v);
      const F y = forward(v);
      std::memcpy(out + b * W, &y, sizeof y);
    }
  }
  __attribute__((always_inline)) static inline void backward_blocks(float* dx, const float* dout, const float* x,
                                                                    size_t b0, size_t b1) {
    for (size_t b = b0; b < b1; ++b) {
      F v, d;
      std::memcpy(&v, x + b * W, sizeof v);
      std::memcpy(&d, dout + b * W, sizeof d);
      const F y = d * derivative(v);
      std::memcpy(dx + b * W, &y, sizeof y);  // after both loads: dx may alias dout
    }
  }

  // The last n % W elements, through a zero-padded vector: the same arithmetic as the rest.
  __attribute__((always_inline)) static inline void forward_tail(float* out, const float* x, size_t n) {
    const size_t done = n / W * W, rest = n - done;
    if (rest == 0) return;
    F v{};
    std::memcpy(&v, x + done, rest * sizeof(float));
    const F y = forward(v);
    std::memcpy(out + done, &y, rest * sizeof(float));
  }
  __attribute__((always_inline)) static inline void backward_tail(float* dx, const float* dout, const float* x,
                                                                  size_t n) {
    const size_t done = n / W * W, rest = n - done;
    if (rest == 0) return;
    F v{}, d{};
    std::memcpy(&v, x + done, rest * sizeof(float));
    std::memcpy(&d, dout + done, rest * sizeof(float));
    const F y = d * derivative(v);
    std::memcpy(dx + done, &y, rest * sizeof(float));
  }
};

// This thread's share [b0, b1) of `blocks` vectors inside a parallel region (static split).
inline void gelu_share(size_t blocks, size_t& b0, size_t& b1) {
  const size_t t = omp_get_thread_num(), nt = omp_get_num_threads();
  b0 = blocks * t / nt;
  b1 = blocks * (t + 1) / nt;
}

// One function per target, each with its own parallel region: GCC outlines a region into a
// function that keeps the target of the one it is written in, and the always-inline kernels
// must be inlined into a function of their width's target (AVX-512 code inside a baseline
// function would be split into SSE pieces). The 4-lane one is the baseline's (SSE2 on x86-64).
#define LORA_GELU_TARGET(W, ATTR)                                                                   \
  ATTR void gelu_forward##W(float* out, const float* x, size_t n) {                                 \
    _Pragma("omp parallel if (n >= kGeluParallelMin)") {                                            \
      size_t b0, b1;                                                                                \
      gelu_share(n / W, b0, b1);                                                                    \
      GeluLanes<W>::forward_blocks(out, x, b0, b1);                                                 \
    }                                                                                               \
    GeluLanes<W>::forward_tail(out, x, n);                                                          \
  }                                                                                                 \
  ATTR void gelu_backward##W(float* dx, const float* dout, const float* x, size_t n) {              \
    _Pragma("omp parallel if (n >= kGeluParallelMin)") {                                            \
      size_t b0, b1;                                                                                \
      gelu_share(n / W, b0, b1);                                                                    \
      GeluLanes<W>::backward_blocks(dx, dout, x, b0, b1);                                           \
    }                                                                                               \
    GeluLanes<W>::backward_tail(dx, dout, x, n);                                                    \
  }
LORA_GELU_TARGET(4, )
#if defined(__x86_64__) || defined(__i386__)
#define LORA_GELU_X86 1
LORA_GELU_TARGET(8, __attribute__((target("avx2,fma"))))
LORA_GELU_TARGET(16, __attribute__((target("avx512f"))))
#endif
#undef LORA_GELU_TARGET

}  // namespace

void gelu_forward_lanes(int lanes, float* out, const float* x, size_t n) {
  check_simd_lanes("gelu", lanes);
#ifdef LORA_GELU_X86
  if (lanes == 16) return gelu_forward16(out, x, n);
  if (lanes == 8) return gelu_forward8(out, x, n);
#endif
  gelu_forward4(out, x, n);
}

void gelu_backward_lanes(int lanes, float* dx, const float* dout, const float* x, size_t n) {
  check_simd_lanes("gelu", lanes);
#ifdef LORA_GELU_X86
  if (lanes == 16) return gelu_backward16(dx, dout, x, n);
  if (lanes == 8) return gelu_backward8(dx, dout, x, n);
#endif
  gelu_backward4(dx, dout, x, n);
}

// Float: the vector kernels at the widest width. Double (the gradient checks): libm's tanh,
// exact to double rounding.
template <typename T>
void gelu_forward(T* out, const T* x, size_t n) {
  if constexpr (std::is_same_v<T, float>) {
    gelu_forward_lanes(simd_lanes(), out, x, n);
  } else {
#pragma omp parallel for schedule(static) if (n >= kGeluParallelMin)
    for (size_t i = 0; i < n; ++i) {
      const T v = x[i];
      out[i] = T(0.5) * v * (T(1) + std::tanh(T(kSqrt2OverPi) * (v + T(0.044715) * v * v * v)));
    }
  }
}

template <typename T>
void gelu_backward(T* dx, const T* dout, const T* x, size_t n) {
  if constexpr (std::is_same_v<T, float>) {
    gelu_backward_lanes(simd_lanes(), dx, dout, x, n);
  } else {
#pragma omp parallel for schedule(static) if (n >= kGeluParallelMin)
    for (size_t i = 0; i < n; ++i) {
      const T v = x[i];
      const T th = std::tanh(T(kSqrt2OverPi) * (v + T(0.044715) * v * v * v));
      const T dinner = T(kSqrt2OverPi) * (T(1) + T(3 * 0.044715) * v * v);
      dx[i] = dout[i] * (T(0.5) * (T(1) + th) + T(0.5) * v * (T(1) - th * th) * dinner);
    }
  }
}

template void gelu_forward<float>(float*, const float*, size_t);
template void gelu_forward<double>(double*, const double*, size_t);
template void gelu_backward<float>(float*, const float*, const float*, size_t);
template void gelu_backward<double>(double*, const double*, const double*, size_t);

}  // namespace lora
