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

}  // namespace lora
