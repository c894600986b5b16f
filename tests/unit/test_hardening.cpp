// Pieces of the bad-input defences that are testable in one process: the fast exp/tanh on
// NaN and infinities, the memory estimate against what the model really allocates, the
// collective failure guard, and the finite check of loaded tensors.
#include <gtest/gtest.h>
#include <mpi.h>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <cmath>
#include <cstdlib>
#include <new>
#include <limits>
#include <memory>

#include "comm/collective_guard.h"
#include "comm/mpi_communicator.h"
#include "comm/watchdog.h"
#include "io/input_error.h"
#include "model/gpt.h"
#include "model/memory_estimate.h"
#include "model/ops/cpu/fast_math.h"
#include "tests/model_shape.h"

namespace lora {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

TEST(FastMath, ExpAndTanhAreDefinedForNanAndInfinities) {
  EXPECT_TRUE(std::isnan(vexp(std::nanf(""))));
  EXPECT_TRUE(std::isnan(vtanh(std::nanf(""))));
  EXPECT_EQ(vexp(kInf), kInf);
  EXPECT_EQ(vexp(-kInf), 0.0f);
  EXPECT_EQ(vexp(1e30f), kInf);
  EXPECT_EQ(vexp(-1e30f), 0.0f);
  EXPECT_EQ(vtanh(kInf), 1.0f);
  EXPECT_EQ(vtanh(-kInf), -1.0f);
  for (float x : {-80.0f, -10.0f, -1.0f, 0.0f, 0.5f, 3.0f, 40.0f, 87.5f})
    EXPECT_NEAR(vexp(x), std::exp(x), 3e-7f * std::exp(x)) << x;
}

}  // namespace
}  // namespace lora

// Every byte requested through operator new while counting is on: the exact heap the model
// asks for, which mallinfo cannot give (arenas, mmap rounding, free-list reuse).
namespace {
std::atomic<bool> g_counting{false};
std::atomic<size_t> g_new_bytes{0};
}  // namespace
void* operator new(size_t n) {
  if (g_counting.load(std::memory_order_relaxed)) g_new_bytes += n;
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

namespace lora {
namespace {

// The estimate must never exceed what is really allocated (it refuses runs on its word), and
// should be close to it; frozen weights and LoRA state exactly.
TEST(MemoryEstimate, MatchesWhatTheModelAllocates) {
  MpiCommunicator comm(MPI_COMM_SELF, 1, 1);
  for (int variant = 0; variant < 8; ++variant) {
    const bool all_targets = variant & 1, recompute = variant & 2, llama = variant & 4;
    SCOPED_TRACE(std::string(llama ? "llama, " : "gpt, ") + (all_targets ? "all targets, dropout" : "q,v") +
                 (recompute ? ", recompute" : ""));
    ModelConfig m = test::model_shape(3, 4, 128, 1000, 96);
    if (llama) {  // GQA 4 on 2 KV heads of 48, SwiGLU 352, q/k/v biases, an untied head
      m.arch = "llama";
      m.n_kv_head = 2;
      m.head_dim = 48;
      m.ffn = 352;
      m.qkv_bias = true;
      m.tie_embeddings = false;
    }
    LoraConfig l;
    if (all_targets) {
      for (const int t : arch_spec(m).lora_targets) l.targets[t] = true;
      l.dropout = 0.1f;
    }
    const int B = 3, T = 80;
    const MemoryEstimate e = estimate_model_memory(m, l, 1, B, T, recompute);
    g_new_bytes = 0;
    g_counting = true;
    auto model = std::make_unique<GptModel<float>>(m, l, comm, B, T, recompute);
    g_counting = false;
    const size_t allocated = g_new_bytes;
    EXPECT_EQ(e.frozen_weights, model->base().size() * sizeof(float));
    EXPECT_EQ(e.lora_state, 4 * model->lora_params().size() * sizeof(float));
    // The AdamW moments (half of lora_state) belong to the trainer, not the model.
    const uint64_t model_part = e.total() - e.lora_state / 2;
    EXPECT_LE(model_part, allocated);
    EXPECT_GE(model_part, 0.98 * allocated) << "estimate " << model_part << " vs allocated " << allocated;
  }
}

TEST(MemoryEstimate, SizesAre64Bit) {
  // GPT-3 175B on one rank: 350 GB of fp16-free fp32 weights would wrap a 32-bit count many times.
  const ModelConfig m = test::model_shape(96, 96, 12288, 50257, 2048);
  const MemoryEstimate e = estimate_model_memory(m, LoraConfig{}, 1, 1, 2048);
  EXPECT_GT(e.frozen_weights, 174e9 * 4);
  EXPECT_LT(e.frozen_weights, 176e9 * 4);
}

TEST(CollectiveGuard, TheFailingRankRethrowsItsOwnError) {
  MpiCommunicator comm(MPI_COMM_SELF, 1, 1);
  EXPECT_THROW(agree_on_failure<InputError>(comm, Group::World, 3, "x", [] { throw InputError("f: bad"); }),
               InputError);
  EXPECT_NO_THROW(agree_on_failure<InputError>(comm, Group::World, 3, "x", [] {}));
  // Other exception types are not the guard's business.
  EXPECT_THROW(agree_on_failure<InputError>(comm, Group::World, 3, "x", [] { throw std::logic_error("bug"); }),
               std::logic_error);
}

// The collective limit: parallel.timeout_s until 3 steps are known, then 20x the slowest step,
// at least 30 s and at most timeout_s; a long phase (checkpoint write) gets timeout_s again.
TEST(Watchdog, CollectiveLimitAdaptsToTheMeasuredSteps) {
  Watchdog w(600, 0, [](int) { FAIL() << "the watchdog fired"; });
  EXPECT_EQ(w.collective_limit(), 600);
  for (int s = 0; s < Watchdog::kStepsBeforeAdapting; ++s) {
    EXPECT_EQ(w.collective_limit(), 600) << "after " << s << " steps";
    w.step_started(s);
    w.step_finished(s == 1 ? 2.5 : 0.1);  // the slowest step counts
  }
  EXPECT_EQ(w.collective_limit(), 50);  // 20 x 2.5 s
  {
    Watchdog::LongPhase writing(&w, "writing a checkpoint");
    EXPECT_EQ(w.collective_limit(), 600);
  }
  EXPECT_EQ(w.collective_limit(), 50);
  Watchdog fast(10, 0, nullptr);
  for (int s = 0; s < 3; ++s) fast.step_finished(0.001);
  EXPECT_EQ(fast.collective_limit(), 10);  // the 30 s floor never exceeds timeout_s
  Watchdog slow(100, 0, nullptr);
  for (int s = 0; s < 3; ++s) slow.step_finished(0.01);
  EXPECT_EQ(slow.collective_limit(), 30);  // the floor
  // Across hosts, never below the MPI runtime's keepalive window (+ margin), even where
  // parallel.timeout_s is shorter: before and after the steps are measured, and in a long phase.
  Watchdog keepalive(5, 0, nullptr);
  keepalive.set_minimum_limit(20);
  EXPECT_EQ(keepalive.collective_limit(), 20);
  for (int s = 0; s < 3; ++s) keepalive.step_finished(0.001);
  EXPECT_EQ(keepalive.collective_limit(), 20);
  Watchdog::LongPhase writing(&keepalive, "writing a checkpoint");
  EXPECT_EQ(keepalive.collective_limit(), 20);
  slow.set_minimum_limit(20);
  EXPECT_EQ(slow.collective_limit(), 30);  // a larger limit stays as it was
}

// The minimum is the limit the watchdog really fires at: 1 s timeout_s, 3 s minimum.
TEST(WatchdogDeathTest, FiresAtTheMinimumLimit) {
  EXPECT_EXIT(
      {
        static const std::string group = "the world group (world ranks 0, 1)";
        const auto start = std::chrono::steady_clock::now();
        Watchdog w(1, 0, [start](int code) {
          const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
          std::fprintf(stderr, "abort called after %.1f s\n", t);
          _exit(t >= 2.9 ? code : 6);
        });
        w.set_minimum_limit(3);
        Watchdog::Collective stalled(&w, "all-reduce (sum)", 64, group);
        std::this_thread::sleep_for(std::chrono::seconds(20));
        _exit(7);
      },
      ::testing::ExitedWithCode(kExitWatchdog), "made no progress for 3 s \\(limit 3 s\\).*abort called after 3\\.[0-9] s");
}

TEST(CheckFinite, NamesTheFileTensorAndElement) {
  const float v[4] = {1, 2, std::nanf(""), kInf};
  EXPECT_EQ(first_nonfinite(v, 2), 2u);
  EXPECT_EQ(first_nonfinite(v, 4), 2u);
  try {
    check_finite(v, 4, "base.h5", "h.0.attn.qkv.weight");
    FAIL() << "accepted a NaN";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("base.h5: tensor 'h.0.attn.qkv.weight' holds a non-finite value (nan) at element 2"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace lora
