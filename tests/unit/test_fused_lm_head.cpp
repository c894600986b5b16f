// The CPU backend's fused LM head + cross-entropy (model/ops/cpu/fused_lm_head.h, issue 25):
// against the unfused path (a chunk x V/tp logits buffer and the ops of
// model/ops/cross_entropy.h, which the CUDA backend runs), in double, on tiles small enough that
// every row and vocabulary tile boundary, the online softmax's rescaling and the row chunks of
// the TP all-reduces are crossed: loss and gradients (LoRA; full fine-tuning with a tied head,
// whose gradient needs the second pass, and with an untied one). And the loss-mask skip: rows
// whose mask is 0 never enter the head, yet loss and gradients are the unfused path's (which
// computes them with weight 0) to 1e-12 relative in double and 1e-6 relative in float.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "comm/mpi_communicator.h"
#include "gradcheck.h"
#include "model/gpt.h"
#include "model/ops/cpu/fused_lm_head.h"
#include "model_test_inputs.h"
#include "tests/model_shape.h"

namespace lora::test {
namespace {

template <typename T>
void randomise(std::vector<T>& v, uint32_t stream, double scale) {
  const auto r = random_vector(v.size(), stream, scale);
  std::copy(r.begin(), r.end(), v.begin());
}

template <typename T>
double rel(const std::vector<T>& a, const std::vector<T>& b) {
  return rel_error(std::vector<double>(a.begin(), a.end()), std::vector<double>(b.begin(), b.end()));
}

struct Result {
  double loss = 0;
  std::vector<double> grads;
};

// Two micro-batches of one optimizer step (gradients accumulate), on a model with seeded
// weights; `fused`: the CPU's fused path with tiles of `rows` x `cols`, else the unfused one.
template <typename T>
Result run(const ModelConfig& mc, const LoraConfig& lc, const Batch& batch, int B, int T_, bool fused, int rows,
           int cols) {
  MpiCommunicator comm(MPI_COMM_SELF, 1, 1);
  GptModel<T> model(mc, lc, comm, 1, T_);
  if (fused) model.set_lm_tile(rows, cols);
  else model.use_unfused_lm_head();
  EXPECT_EQ(model.lm_head_is_fused(), fused);
  randomise(model.base(), 41, 0.5);
  for (const auto* name : {"h.0.ln_1.weight", "h.1.ln_2.weight", "ln_f.weight"})
    for (int j = 0; j < mc.d_model; ++j) model.base_tensor(name)[j] += T(1);
  if (lc.enabled) randomise(model.lora_params(), 42, 0.5);
  const double loss_tokens = std::max(1.0, double(std::count_if(batch.mask.begin(), batch.mask.end(), [](float m) { return m != 0; })));
  model.zero_grads();
  Result r;
  for (int i = 0; i < B; ++i) r.loss += model.step(batch.micro(i, 1, T_), loss_tokens, DropoutContext{}, true);
  r.grads.assign(model.trainable_grads().begin(), model.trainable_grads().end());
  return r;
}

ModelConfig tiny_llama(int V, int context) {
  ModelConfig m = model_shape(2, 4, 8, V, context);
  m.arch = "llama";
  m.n_kv_head = 2;
  m.head_dim = 4;
  m.ffn = 12;
  m.tie_embeddings = false;
  return m;
}

Batch batch_with_mask(int B, int T, int V, int kind) {
  Batch b = random_batch(B, T, V);  // kind 0: every 4th target out
  for (int i = 0; i < B * T; ++i) {
    if (kind == 1) b.mask[i] = 1.0f;                                // every row counts
    if (kind == 2) b.mask[i] = (i % T) < (2 * T) / 5 ? 0.0f : 1.0f;  // a prompt: the first 40 % of each sequence
    if (kind == 3) b.mask[i] = (i % T) < T - 1 ? 0.0f : 0.5f;       // one target per sequence, weight 0.5
  }
  return b;
}

struct Case {
  const char* name;
  bool llama, full;
};

TEST(FusedLmHead, MatchesTheUnfusedPathInDouble) {
  const int V = 37, T = 23, B = 2;
  LoraConfig full;
  full.enabled = false;
  for (const Case c : {Case{"gpt LoRA (tied head)", false, false}, Case{"gpt full fine-tuning (tied head: dW)", false, true},
                       Case{"llama LoRA (untied head)", true, false}, Case{"llama full fine-tuning (untied head: dW)", true, true}}) {
    const ModelConfig mc = c.llama ? tiny_llama(V, T) : model_shape(2, 2, 8, V, T);
    const LoraConfig lc = c.full ? full : all_targets(0.0f, 2, 3, c.llama ? "llama" : "gpt");
    for (int kind = 0; kind < 4; ++kind) {
      const Batch batch = batch_with_mask(B, T, V, kind);
      const Result ref = run<double>(mc, lc, batch, B, T, false, 0, 0);
      // Tiles: 5 rows x 4 columns (10 vocabulary tiles, the last of 1 column, 5 row tiles, the
      // last short), one row x all columns, all rows x one column, the default.
      for (const auto& [rows, cols] : {std::pair{5, 4}, std::pair{1, 64}, std::pair{64, 1}, std::pair{128, 512}}) {
        SCOPED_TRACE(std::string(c.name) + ", mask kind " + std::to_string(kind) + ", tile " + std::to_string(rows) + "x" +
                     std::to_string(cols));
        const Result f = run<double>(mc, lc, batch, B, T, true, rows, cols);
        EXPECT_NEAR(f.loss, ref.loss, 1e-12 * std::abs(ref.loss));
        EXPECT_LT(rel_error(f.grads, ref.grads), 1e-12);
      }
    }
  }
}

// More rows than one chunk of the TP all-reduces (1024): the second chunk's statistics and
// gradients, with a prompt mask (the gathered rows straddle the chunks).
TEST(FusedLmHead, SeveralRowChunks) {
  const int V = 29, T = 700, B = 2;
  const ModelConfig mc = model_shape(1, 2, 8, V, T);
  for (int kind : {1, 0}) {
    SCOPED_TRACE("mask kind " + std::to_string(kind));
    const Batch batch = batch_with_mask(1, B * T, V, kind);  // one micro-batch of 2 sequences
    Batch two = batch;
    auto step = [&](bool fused) {
      MpiCommunicator comm(MPI_COMM_SELF, 1, 1);
      GptModel<double> model(mc, all_targets(0.0f), comm, B, T);
      if (fused) model.set_lm_tile(96, 8);
      else model.use_unfused_lm_head();
      randomise(model.base(), 43, 0.5);
      randomise(model.lora_params(), 44, 0.5);
      model.zero_grads();
      Result r;
      r.loss = model.step(MicroBatch{two.inputs.data(), two.targets.data(), two.mask.data(), B, T}, 100.0, DropoutContext{}, true);
      r.grads.assign(model.lora_grads().begin(), model.lora_grads().end());
      return r;
    };
    const Result ref = step(false), f = step(true);
    EXPECT_NEAR(f.loss, ref.loss, 1e-12 * std::abs(ref.loss));
    EXPECT_LT(rel_error(f.grads, ref.grads), 1e-12);
  }
}

// The loss-mask skip in the precision training runs in: a prompt mask (0 on the first 40 % of
// every sequence) and one with a single weighted target per sequence give the unfused path's
// loss and gradients, which computes every row (mask 0: weight 0), to 1e-6 relative in float.
TEST(FusedLmHead, MaskedRowsSkipTheHeadFloat) {
  const int V = 300, T = 40, B = 3;
  const ModelConfig mc = model_shape(2, 2, 16, V, T);
  for (int kind : {2, 3, 0}) {
    SCOPED_TRACE("mask kind " + std::to_string(kind));
    const Batch batch = batch_with_mask(B, T, V, kind);
    const Result ref = run<float>(mc, all_targets(0.0f), batch, B, T, false, 0, 0);
    const Result f = run<float>(mc, all_targets(0.0f), batch, B, T, true, 16, 64);
    EXPECT_NEAR(f.loss, ref.loss, 1e-6 * std::abs(ref.loss));
    EXPECT_LT(rel_error(f.grads, ref.grads), 1e-6);
  }
}

// Every row masked: no loss, no gradient, nothing computed.
TEST(FusedLmHead, AllRowsMasked) {
  const int V = 37, T = 9;
  Batch batch = random_batch(1, T, V);
  std::fill(batch.mask.begin(), batch.mask.end(), 0.0f);
  const Result f = run<double>(model_shape(2, 2, 8, V, T), all_targets(0.0f), batch, 1, T, true, 4, 4);
  EXPECT_EQ(f.loss, 0.0);
  EXPECT_TRUE(std::all_of(f.grads.begin(), f.grads.end(), [](double g) { return g == 0.0; }));
}

}  // namespace
}  // namespace lora::test

namespace lora::test {
namespace {

// The float online softmax of one tile (the widest vectors this CPU runs: every width is
// tested by RowExp.*) against the double one (libm's exp): two tiles of a row chunk, the second
// with larger logits on some rows (the running maximum grows: the accumulators are rescaled),
// 203 columns (a vector tail at every width), targets inside and outside the tile. Tile
// values, sums and rescaled accumulators to 1e-6 relative, maxima and target logits exactly.
TEST(FusedLmHead, OnlineSoftmaxInFloatMatchesDouble) {
  const int rows = 7, cols = 203, d = 5;
  auto floats = [](std::vector<double> v) {  // inputs both precisions hold exactly
    for (double& x : v) x = static_cast<float>(x);
    return v;
  };
  const auto l0 = floats(random_vector(size_t(rows) * cols, 51, 3.0)), l1 = floats(random_vector(size_t(rows) * cols, 52, 3.0));
  const auto a0 = floats(random_vector(size_t(rows) * d, 53, 1.0));
  std::vector<int32_t> targets{0, 202, 203, 250, 405, -1, 100};
  std::vector<double> tile1(l1.begin(), l1.end());
  for (int i = 0; i < rows; i += 2) tile1[size_t(i) * cols + 17] = 40.0 + i;  // a new maximum, and exp < e^-87 elsewhere
  std::vector<double> dt(l0.begin(), l0.end()), dmax(rows), dstats(2 * rows), dacc(a0.begin(), a0.end());
  std::vector<float> ft(l0.begin(), l0.end()), fmax(rows), fstats(2 * rows), facc(a0.begin(), a0.end());
  lm_tile_online_softmax<double>(dt.data(), rows, cols, 0, targets.data(), dmax.data(), dstats.data(), nullptr, d, true);
  lm_tile_online_softmax<float>(ft.data(), rows, cols, 0, targets.data(), fmax.data(), fstats.data(), nullptr, d, true);
  EXPECT_LT(rel(ft, std::vector<float>(dt.begin(), dt.end())), 1e-6);
  std::vector<double> dt1 = tile1;
  std::vector<float> ft1(tile1.begin(), tile1.end());
  lm_tile_online_softmax<double>(dt1.data(), rows, cols, cols, targets.data(), dmax.data(), dstats.data(), dacc.data(), d, false);
  lm_tile_online_softmax<float>(ft1.data(), rows, cols, cols, targets.data(), fmax.data(), fstats.data(), facc.data(), d, false);
  for (int i = 0; i < rows; ++i) {
    EXPECT_EQ(fmax[i], float(dmax[i])) << "row " << i;
    EXPECT_NEAR(fstats[2 * i], dstats[2 * i], 1e-6 * dstats[2 * i]) << "row " << i;
    EXPECT_EQ(fstats[2 * i + 1], float(dstats[2 * i + 1])) << "row " << i;
  }
  EXPECT_LT(rel(ft1, std::vector<float>(dt1.begin(), dt1.end())), 1e-6);
  EXPECT_LT(rel(facc, std::vector<float>(dacc.begin(), dacc.end())), 1e-6);
  EXPECT_EQ(ft1[17], 1.0f);  // the new maximum itself: e^0
}

}  // namespace
}  // namespace lora::test
