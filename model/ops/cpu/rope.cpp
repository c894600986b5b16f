#include "model/ops/rope.h"

#include <cmath>
#include <cstddef>

namespace lora {

std::vector<double> rope_inv_freq(int head_dim, double theta, const RopeScaling& s) {
  const int half = head_dim / 2;
  std::vector<double> inv(half);
  for (int j = 0; j < half; ++j) inv[j] = std::pow(theta, -2.0 * j / head_dim);
  if (s.factor <= 0) return inv;
  const double L = s.original_max_position_embeddings;
  const double low_wavelen = L / s.low_freq_factor, high_wavelen = L / s.high_freq_factor;
  for (double& f : inv) {
    const double wavelen = 2 * M_PI / f;
    if (wavelen < high_wavelen) continue;  // high frequencies: unchanged
    if (wavelen > low_wavelen) {           // low frequencies: slowed by the factor
      f /= s.factor;
      continue;
    }
    const double smooth = (L / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
    f = (1 - smooth) * f / s.factor + smooth * f;
  }
  return inv;
}

template <typename T>
void rope_tables(T* cos, T* sin, const std::vector<double>& inv_freq, int pos0, int n_pos) {
  const int half = static_cast<int>(inv_freq.size());
  for (int p = 0; p < n_pos; ++p)
    for (int j = 0; j < half; ++j) {
      const double angle = double(pos0 + p) * inv_freq[j];
      cos[static_cast<size_t>(p) * half + j] = T(std::cos(angle));
      sin[static_cast<size_t>(p) * half + j] = T(std::sin(angle));
    }
}

namespace {
// Rotates every head of every row by +angle (sign 1) or -angle (sign -1).
template <typename T>
void rotate(T* x, const T* cos, const T* sin, int rows, int T_, int n_heads, int head_dim, int ld, T sign) {
  const int half = head_dim / 2;
#pragma omp parallel for schedule(static)
  for (int r = 0; r < rows; ++r) {
    const T* c = cos + static_cast<size_t>(r % T_) * half;
    const T* s = sin + static_cast<size_t>(r % T_) * half;
    for (int h = 0; h < n_heads; ++h) {
      T* v = x + static_cast<size_t>(r) * ld + static_cast<size_t>(h) * head_dim;
      for (int j = 0; j < half; ++j) {
        const T a = v[j], b = v[j + half], sn = sign * s[j];
        v[j] = a * c[j] - b * sn;
        v[j + half] = b * c[j] + a * sn;
      }
    }
  }
}
}  // namespace

template <typename T>
void rope_forward(T* x, const T* cos, const T* sin, int rows, int T_, int n_heads, int head_dim, int ld) {
  rotate(x, cos, sin, rows, T_, n_heads, head_dim, ld, T(1));
}

template <typename T>
void rope_backward(T* dx, const T* cos, const T* sin, int rows, int T_, int n_heads, int head_dim, int ld) {
  rotate(dx, cos, sin, rows, T_, n_heads, head_dim, ld, T(-1));  // a rotation's transpose is its inverse
}

template void rope_tables<float>(float*, float*, const std::vector<double>&, int, int);
template void rope_tables<double>(double*, double*, const std::vector<double>&, int, int);
template void rope_forward<float>(float*, const float*, const float*, int, int, int, int, int);
template void rope_forward<double>(double*, const double*, const double*, int, int, int, int, int);
template void rope_backward<float>(float*, const float*, const float*, int, int, int, int, int);
template void rope_backward<double>(double*, const double*, const double*, int, int, int, int, int);

}  // namespace lora
