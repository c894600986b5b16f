// Finite-difference helpers for the double-precision gradient checks.
#pragma once
#include <cmath>
#include <cstdint>
#include <functional>
#include <vector>

#include "model/rng.h"

namespace lora::test {

// Deterministic values in [-scale, scale) for test tensors.
inline std::vector<double> random_vector(size_t n, uint32_t stream, double scale = 1.0) {
  std::vector<double> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = uniform_element(777, RngPurpose::BaseInit, stream, i, scale);
  return v;
}

// Central differences of the scalar f with respect to every element of x.
inline std::vector<double> numeric_grad(const std::function<double()>& f, double* x, size_t n, double eps = 1e-6) {
  std::vector<double> g(n);
  for (size_t i = 0; i < n; ++i) {
    const double keep = x[i];
    x[i] = keep + eps;
    const double up = f();
    x[i] = keep - eps;
    const double down = f();
    x[i] = keep;
    g[i] = (up - down) / (2 * eps);
  }
  return g;
}

// ||a - b|| / max(||a||, ||b||): one number per tensor, robust to elements near zero.
inline double rel_error(const std::vector<double>& a, const std::vector<double>& b) {
  double diff = 0, na = 0, nb = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff += (a[i] - b[i]) * (a[i] - b[i]);
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  const double denom = std::sqrt(std::max(na, nb));
  return denom == 0 ? std::sqrt(diff) : std::sqrt(diff) / denom;
}

inline double dot(const std::vector<double>& a, const double* b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

}  // namespace lora::test
