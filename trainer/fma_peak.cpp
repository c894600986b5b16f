#include "trainer/fma_peak.h"

#include <omp.h>

#include <algorithm>

namespace lora {

namespace {
// The widest vector this build targets: 16 floats with AVX-512, 8 with AVX2.
#if defined(__AVX512F__)
constexpr int kLanes = 16;
#else
constexpr int kLanes = 8;
#endif
typedef float vfloat __attribute__((vector_size(kLanes * sizeof(float))));
constexpr int kChains = 16;  // independent accumulators hide the FMA latency

double trial(long iters) {
  vfloat acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = vfloat{} + 1.0f + c * 1e-3f;
  const vfloat a = vfloat{} + 0.999999f, b = vfloat{} + 1e-7f;
  const double t0 = omp_get_wtime();
  for (long i = 0; i < iters; ++i)
    for (int c = 0; c < kChains; ++c) {
      acc[c] = acc[c] * a + b;
      asm volatile("" : "+x"(acc[c]));  // keep every FMA
    }
  const double sec = omp_get_wtime() - t0;
  float sink = 0;
  for (int c = 0; c < kChains; ++c) sink += acc[c][0];
  asm volatile("" ::"x"(sink));
  return 2.0 * kLanes * kChains * iters / sec / 1e9;
}
}  // namespace

double measure_fma_peak_gflops_per_core() {
  double best = 0;
  for (int i = 0; i < 5; ++i) best = std::max(best, trial(4'000'000));
  return best;
}

}  // namespace lora
