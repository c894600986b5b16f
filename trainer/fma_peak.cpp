#include "trainer/fma_peak.h"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>

namespace lora {

namespace {
constexpr int kChains = 16;  // independent accumulators, enough to hide the FMA latency

#if defined(__AVX512F__)
using vec = __m512;
constexpr int kLanes = 16;
inline vec splat(float x) { return _mm512_set1_ps(x); }
inline vec fma(vec a, vec b, vec c) { return _mm512_fmadd_ps(a, b, c); }
inline float first(vec v) { return _mm512_cvtss_f32(v); }
#else
using vec = __m256;
constexpr int kLanes = 8;
inline vec splat(float x) { return _mm256_set1_ps(x); }
inline vec fma(vec a, vec b, vec c) { return _mm256_fmadd_ps(a, b, c); }
inline float first(vec v) { return _mm256_cvtss_f32(v); }
#endif

volatile float sink;  // keeps the loop's result, and so the loop, alive

double trial(long iters) {
  vec acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = splat(1.0f + c * 1e-3f);
  const vec a = splat(0.999999f), b = splat(1e-7f);
  const double t0 = omp_get_wtime();
  for (long i = 0; i < iters; ++i)
    for (int c = 0; c < kChains; ++c) acc[c] = fma(acc[c], a, b);
  const double sec = omp_get_wtime() - t0;
  float s = 0;
  for (int c = 0; c < kChains; ++c) s += first(acc[c]);
  sink = s;
  return 2.0 * kLanes * kChains * iters / sec / 1e9;
}
}  // namespace

double measure_fma_peak_gflops_per_core() {
  double best = 0;
  for (int i = 0; i < 5; ++i) best = std::max(best, trial(4'000'000));
  return best;
}

}  // namespace lora
