#include "trainer/machine/fma_peak.h"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>

namespace lora {

namespace {
constexpr int kChains = 16;  // independent accumulators, enough to hide the FMA latency
constexpr long kIters = 4'000'000;

volatile float sink;  // keeps the loop's result, and so the loop, alive

// One timed loop of kChains independent FMA chains on the widest vectors the CPU has. The
// width is chosen at run time (__builtin_cpu_supports), so a portable build (LORA_NATIVE=OFF)
// measures the same peak as a native one.
#define LORA_FMA_TRIAL(NAME, TARGET, VEC, LANES, SPLAT, FMADD, FIRST)                  \
  __attribute__((target(TARGET))) double NAME(long iters) {                            \
    VEC acc[kChains];                                                                   \
    for (int c = 0; c < kChains; ++c) acc[c] = SPLAT(1.0f + c * 1e-3f);                 \
    const VEC a = SPLAT(0.999999f), b = SPLAT(1e-7f);                                   \
    const double t0 = omp_get_wtime();                                                  \
    for (long i = 0; i < iters; ++i)                                                    \
      for (int c = 0; c < kChains; ++c) acc[c] = FMADD(acc[c], a, b);                   \
    const double sec = omp_get_wtime() - t0;                                            \
    float s = 0;                                                                        \
    for (int c = 0; c < kChains; ++c) s += FIRST(acc[c]);                               \
    sink = s;                                                                           \
    return 2.0 * (LANES) * kChains * iters / sec / 1e9;                                 \
  }
LORA_FMA_TRIAL(trial_avx512, "avx512f", __m512, 16, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_cvtss_f32)
LORA_FMA_TRIAL(trial_avx2, "avx2,fma", __m256, 8, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_cvtss_f32)
#undef LORA_FMA_TRIAL

double trial(long iters) {
  if (__builtin_cpu_supports("avx512f")) return trial_avx512(iters);
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return trial_avx2(iters);
  return 0;  // no FMA vectors: MFU is then reported against the given peak only
}
}  // namespace

double measure_fma_peak_gflops_per_core() {
  double best = 0;
  for (int i = 0; i < 5; ++i) best = std::max(best, trial(kIters));
  return best;
}

double measure_fma_peak_gflops_all_threads(int threads) {
  double total = 0;
#pragma omp parallel num_threads(std::max(threads, 1)) reduction(+ : total)
  total += measure_fma_peak_gflops_per_core();
  return total;
}

}  // namespace lora
