#include "trainer/machine/fma_peak.h"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>

namespace lora {

namespace {
// Independent accumulators: enough to hide the FMA latency (4-5 cycles, 2 ports: 8-10 chains),
// few enough to stay in registers with the two constants. AVX2 has 16 vector registers: 16
// chains spilled to the stack there and measured about half the peak (53 GFLOP/s per core on
// a Zen 3 whose FMA units sustain 94, sgemm_peak.c's figure; lora_dist bench then reported an
// MFU of 110 %); AVX-512 has 32.
constexpr int kChainsAvx512 = 16, kChainsAvx2 = 12;
constexpr long kIters = 4'000'000;

volatile float sink;  // keeps the loop's result, and so the loop, alive

// One timed loop of CHAINS independent FMA chains on the widest vectors the CPU has. The
// width is chosen at run time (__builtin_cpu_supports), so a portable build (LORA_NATIVE=OFF)
// measures the same peak as a native one.
#define LORA_FMA_TRIAL(NAME, TARGET, VEC, LANES, SPLAT, FMADD, FIRST, CHAINS)         \
  __attribute__((target(TARGET))) double NAME(long iters) {                            \
    VEC acc[CHAINS];                                                                   \
    for (int c = 0; c < CHAINS; ++c) acc[c] = SPLAT(1.0f + c * 1e-3f);                 \
    const VEC a = SPLAT(0.999999f), b = SPLAT(1e-7f);                                   \
    const double t0 = omp_get_wtime();                                                  \
    for (long i = 0; i < iters; ++i)                                                    \
      for (int c = 0; c < CHAINS; ++c) acc[c] = FMADD(acc[c], a, b);                   \
    const double sec = omp_get_wtime() - t0;                                            \
    float s = 0;                                                                        \
    for (int c = 0; c < CHAINS; ++c) s += FIRST(acc[c]);                               \
    sink = s;                                                                           \
    return 2.0 * (LANES) * CHAINS * iters / sec / 1e9;                                 \
  }
LORA_FMA_TRIAL(trial_avx512, "avx512f", __m512, 16, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_cvtss_f32, kChainsAvx512)
LORA_FMA_TRIAL(trial_avx2, "avx2,fma", __m256, 8, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_cvtss_f32, kChainsAvx2)
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
