// Preemption signals arrive at any instant, in the middle of a GEMM. oneDNN 2.x's gemm:jit
// kernels keep rsp pointing into the heap while they run (oneDNN issue #4845), so a handler
// run on that thread writes its frame over the heap. install_preemption_handlers routes
// SIGTERM/SIGUSR1 to a thread of their own; without that, this test aborts with "corrupted
// size vs. prev_size" or a segfault in JIT code within a second (as slurm.requeue_resume
// once did in CI).
#include <gtest/gtest.h>
#include <omp.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <thread>
#include <vector>

#include "model/ops/cpu/frozen_gemm.h"
#include "trainer/train/preemption.h"

namespace lora {
namespace {

TEST(Preemption, SignalsDuringFrozenGemmsAreRecordedAndHarmless) {
  install_preemption_handlers();
  ASSERT_EQ(preemption_signal(), 0);
  set_frozen_gemm_engine(FrozenGemmEngine::OneDNN);
  omp_set_num_threads(1);  // as each rank runs under mpirun (train.threads: 1); one thread runs
                           // the whole GEMM in the kernel whose rsp is in the heap

  // The projections of the tiny test model (d_model 64): q/k/v, o, fc1, fc2, and a decode row.
  struct Shape { int M, K, N; };
  const Shape shapes[] = {{64, 64, 192}, {64, 64, 64}, {64, 64, 256}, {64, 256, 64}, {4, 64, 64}};

  std::atomic<bool> stop{false};
  std::atomic<long> sent{0};
  std::thread sender([&] {
    while (!stop) {
      kill(getpid(), SIGUSR1);  // to the process, as mpirun, srun and kill(1) send it
      ++sent;
      std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
  });
  long gemms = 0, wrong = 0;
  for (const Shape& sh : shapes) {
    const int M = sh.M, K = sh.K, N = sh.N;
    std::vector<float> x(M * K), w(N * K), want(M * N);
    for (int i = 0; i < M * K; ++i) x[i] = float(i % 13) * 0.1f - 0.6f;
    for (int i = 0; i < N * K; ++i) w[i] = float(i % 7) * 0.2f - 0.5f;
    for (int m = 0; m < M; ++m)
      for (int n = 0; n < N; ++n) {
        double acc = 0;
        for (int k = 0; k < K; ++k) acc += double(x[m * K + k]) * w[n * K + k];
        want[m * N + n] = float(acc);
      }
    std::vector<float> y(M * N + 16, 7.0f);  // 16 guard floats past the result
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(600);
    while (std::chrono::steady_clock::now() < until) {
      frozen_gemm_forward<float>(y.data(), x.data(), w.data(), M, K, N);
      ++gemms;
      bool ok = true;
      for (int i = 0; i < M * N; ++i) ok = ok && std::fabs(y[i] - want[i]) <= 1e-4f * (1.0f + std::fabs(want[i]));
      for (int i = M * N; i < M * N + 16; ++i) ok = ok && y[i] == 7.0f;
      wrong += !ok;
    }
  }
  stop = true;
  sender.join();
  EXPECT_EQ(wrong, 0) << "of " << gemms << " GEMMs";
  EXPECT_GT(sent.load(), 1000);
  EXPECT_GT(gemms, 100);
  EXPECT_EQ(preemption_signal(), SIGUSR1);
  EXPECT_STREQ(signal_name(preemption_signal()), "SIGUSR1");
}

}  // namespace
}  // namespace lora
