// The GEMM clock behind bench's "of it in GEMM calls" column (model/ops/gemm_clock.h): off, it
// counts nothing; on, a GEMM's wall time is counted once whether one thread calls it or every
// thread of a parallel region runs its own part, and time outside GEMM calls is not counted.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <vector>

#include "model/ops/cpu/gemm.h"
#include "model/ops/gemm_clock.h"

namespace lora {
namespace {

struct ClockOff {
  ~ClockOff() { set_gemm_clock(false); }
};

void sgemm(int n, std::vector<float>& a, std::vector<float>& c) {
  gemm(false, false, n, n, n, 1.0f, a.data(), n, a.data(), n, 0.0f, c.data(), n);
}

TEST(GemmClock, CountsGemmCallsOnlyAndOnlyWhenOn) {
  ClockOff guard;
  const int n = 384;
  std::vector<float> a(size_t(n) * n, 0.5f), c(size_t(n) * n);
  set_gemm_clock(false);
  double before = gemm_clock_seconds();
  sgemm(n, a, c);
  EXPECT_EQ(gemm_clock_seconds(), before) << "counted while off";

  set_gemm_clock(true);
  // Not a GEMM: an element-wise pass of about the same length counts nothing.
  before = gemm_clock_seconds();
  double s = 0;
  for (int rep = 0; rep < 200; ++rep)
    for (float& v : c) s += std::sqrt(v + rep);
  EXPECT_GT(s, 0);
  EXPECT_EQ(gemm_clock_seconds(), before);

  // One call: between a tenth of and all of the wall time around it (the call is all of it).
  before = gemm_clock_seconds();
  const double t0 = omp_get_wtime();
  for (int rep = 0; rep < 3; ++rep) sgemm(n, a, c);
  const double wall = omp_get_wtime() - t0, counted = gemm_clock_seconds() - before;
  EXPECT_GT(counted, 0.1 * wall);
  EXPECT_LE(counted, wall * 1.0001 + 1e-6);
  EXPECT_FLOAT_EQ(c[0], 0.25f * n);
}

TEST(GemmClock, AParallelRegionOfGemmsCountsItsWallTimeOnce) {
  ClockOff guard;
  set_gemm_clock(true);
  const int n = 256, threads = 2;
  std::vector<std::vector<float>> a(threads, std::vector<float>(size_t(n) * n, 1.0f)), c = a;
  const double before = gemm_clock_seconds(), t0 = omp_get_wtime();
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num();
    for (int rep = 0; rep < 4; ++rep) sgemm(n, a[t], c[t]);
  }
  const double wall = omp_get_wtime() - t0, counted = gemm_clock_seconds() - before;
  // Each thread adds its time / team size: at most the region's wall time, never twice it.
  EXPECT_LE(counted, wall * 1.0001 + 1e-6);
  EXPECT_GT(counted, 0.1 * wall);
}

}  // namespace
}  // namespace lora
