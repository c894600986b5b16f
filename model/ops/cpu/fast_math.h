// exp and tanh that GCC vectorises (libm's are scalar
// calls): in the GELU, softmax and cross-entropy passes they were ~15% of a GPT-2 step.
// Float gets a Cephes-style polynomial (max relative error ~2e-7, the same order as
// float rounding); double keeps libm, so the double gradient checks stay exact.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

namespace lora {

// Defined for every input, as std::exp is: NaN -> NaN, +inf and x > 88.7 -> +inf,
// -inf and x < -87 -> 0 (e^-87 ~ 1.6e-38, at the edge of normal floats). The polynomial runs
// on a clamped copy, so the float-to-int conversion below never sees NaN or a huge value
// (that would be undefined behaviour), and selects put the special values back.
inline float vexp(float x) {
  const float xc = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : (x == x ? x : 0.0f));
  const float t = xc * 1.44269504088896341f;
  const int n = static_cast<int>(t + (t >= 0 ? 0.5f : -0.5f));  // round to nearest
  const float fn = static_cast<float>(n);
  const float r = (xc - fn * 0.693359375f) - fn * -2.12194440e-4f;  // x - n ln2, in two parts
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (n + 127) << 23;  // 2^n
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  float y = p * scale;
  y = x < -87.0f ? 0.0f : y;
  y = x > 88.7f ? std::numeric_limits<float>::infinity() : y;
  return x == x ? y : x;
}

// 1 - 2/(e^2x + 1): +inf -> 1, -inf -> -1, NaN -> NaN.
inline float vtanh(float x) { return 1.0f - 2.0f / (vexp(2.0f * x) + 1.0f); }

inline double vexp(double x) { return std::exp(x); }
inline double vtanh(double x) { return std::tanh(x); }

// --- The same exp on whole vectors, for the element-wise passes (GELU, SwiGLU) ---------------
// GCC's vector extension: one source that compiles to SSE (4 lanes), AVX2 (8) or AVX-512 (16)
// registers once it is inlined into a function of that target (__attribute__((target(...))),
// chosen at run time with __builtin_cpu_supports: see simd_lanes() below). Plain operators
// only, so there is nothing for the tested AVX2 path and the AVX-512 one to differ in but the
// width. (The scalar loops above are not vectorised by GCC 12 inside `omp parallel for simd`:
// `-fopt-info-vec` says so, and the GELU ran at 14 ns per element on one Zen 3 core.)
template <int W>
struct FloatVec {
  typedef float f __attribute__((vector_size(4 * W)));
  typedef int32_t i __attribute__((vector_size(4 * W)));
};

// Vectors wider than the baseline ABI's, passed or returned by value, draw -Wpsabi notes about
// the ABI (which no call here uses: these are always inlined into a function of the matching
// target). Arguments go by reference, which silences the notes GCC cannot be told to keep
// quiet; the returns are silenced here (warnings placed on these lines, in whichever file of a
// unity build includes this first) and by `#pragma GCC diagnostic ignored "-Wpsabi"` at the top
// of each .cpp that uses them (warnings placed at the end of the file).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"

// vexp on each lane, the same polynomial as the scalar one, for finite x in [-87.3, 88], where
// 2^n is a normal float (callers clamp; NaN lanes give garbage that the callers' own
// arithmetic on x turns back into NaN).
// Rounding to the nearest integer by the 1.5 * 2^23 trick (round-to-nearest-even, exact for
// |t| < 2^22), 2^n built in the exponent bits.
template <class F, class I>
__attribute__((always_inline)) inline F vexp_lanes(const F& x) {
  const F t = x * 1.44269504088896341f;
  const F magic = F{} + 12582912.0f;
  const F fn = (t + magic) - magic;
  const F r = (x - fn * 0.693359375f) - fn * -2.12194440e-4f;
  F p = F{} + 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const I n = __builtin_convertvector(fn, I);
  return p * (F)((n + 127) << 23);  // a cast between vector types keeps the bits: 2^n
}

// lo <= x <= hi lane by lane (a NaN lane stays NaN).
template <class F>
__attribute__((always_inline)) inline F clamp_lanes(const F& x, float lo, float hi) {
  const F y = x < lo ? F{} + lo : x;
  return y > hi ? F{} + hi : y;
}

#pragma GCC diagnostic pop

// The widest float vector this CPU runs, in lanes: 16 (AVX-512F), 8 (AVX2 + FMA) or 4 (the
// SSE2 every x86-64 has). Asked once; LORA_SIMD_LANES=4|8|16 caps it (tests, comparisons).
int simd_lanes();

// Throws std::invalid_argument naming `op` unless lanes is 4, 8 or 16 and at most simd_lanes().
void check_simd_lanes(const char* op, int lanes);

// --- Softmax rows (row_exp.cpp): the online softmaxes of attention and of the fused LM head ---
// The maximum of x[0..n) (-inf for n = 0; NaNs are skipped), and x[j] = e^(x[j] - m) for j < n
// with their sum returned; x - m <= 0 expected (m a running maximum or a log-sum-exp), e^(x - m)
// is 0 below -87 as vexp gives it. Float at the widest vector width this CPU runs (_lanes: a
// given width, for tests); double with libm's exp (the gradient checks).
float row_max(const float* x, int n);
float exp_shifted_sum(float* x, int n, float m);
float row_max_lanes(int lanes, const float* x, int n);
float exp_shifted_sum_lanes(int lanes, float* x, int n, float m);
inline double row_max(const double* x, int n) {
  double m = -std::numeric_limits<double>::infinity();
  for (int j = 0; j < n; ++j) m = x[j] > m ? x[j] : m;
  return m;
}
inline double exp_shifted_sum(double* x, int n, double m) {
  double sum = 0;
  for (int j = 0; j < n; ++j) sum += (x[j] = std::exp(x[j] - m));
  return sum;
}

}  // namespace lora
