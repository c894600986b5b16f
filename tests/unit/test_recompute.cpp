// train.recompute: full keeps only each block's input and re-runs the block's forward in the
// backward. The re-run sees the same inputs and the same dropout keys (DESIGN §5), so the
// losses and LoRA gradients must equal those without recompute bit for bit; the gradients
// are also checked against finite differences on their own.
#include <gtest/gtest.h>

#include <algorithm>

#include "comm/mpi_communicator.h"
#include "gradcheck.h"
#include "model_test_inputs.h"
#include "model/gpt.h"
#include "model/memory_estimate.h"
#include "tests/model_shape.h"

namespace lora::test {
namespace {

template <typename T>
struct TrainedRun {
  std::vector<double> losses;
  std::vector<T> grads;
};

// Two optimizer steps' worth of micro-batches (accumulation over two of B sequences each),
// with dropout on, from the same seeded base and random LoRA factors (B != 0).
template <typename T>
TrainedRun<T> train_micro_batches(const ModelConfig& mc, const LoraConfig& lc, bool recompute, int B, int Tn) {
  MpiCommunicator comm(MPI_COMM_SELF, 1, 1);
  GptModel<T> model(mc, lc, comm, B, Tn, recompute);
  model.init_base_from_seed(3);
  const auto r = random_vector(model.lora_params().size(), 41, 0.3);
  std::transform(r.begin(), r.end(), model.lora_params().begin(), [](double v) { return static_cast<T>(v); });
  const Batch tok = random_batch(2 * B, Tn, mc.vocab_size);
  TrainedRun<T> out;
  model.zero_grads();
  for (int step = 0; step < 2; ++step)
    for (int i = 0; i < 2; ++i) {
      const uint32_t first_token = static_cast<uint32_t>(i * B * Tn);
      out.losses.push_back(model.step(tok.micro(i * B, B, Tn), 2.0 * B * Tn,
                                      DropoutContext{true, 9, static_cast<uint32_t>(step), first_token}, true));
    }
  out.grads = model.lora_grads();
  return out;
}

TEST(Recompute, SameLossesAndGradientsBitForBit) {
  // T = 70 is not a multiple of the attention block (64); every target, dropout 0.1.
  const ModelConfig mc = model_shape(3, 4, 64, 97, 80);
  for (float dropout : {0.0f, 0.1f}) {
    SCOPED_TRACE("dropout " + std::to_string(dropout));
    const TrainedRun<float> kept = train_micro_batches<float>(mc, all_targets(dropout, 3, 5), false, 2, 70);
    const TrainedRun<float> recomputed = train_micro_batches<float>(mc, all_targets(dropout, 3, 5), true, 2, 70);
    EXPECT_EQ(kept.losses, recomputed.losses);
    ASSERT_EQ(kept.grads.size(), recomputed.grads.size());
    EXPECT_TRUE(kept.grads == recomputed.grads) << "LoRA gradients differ with recompute";
    EXPECT_GT(*std::max_element(kept.grads.begin(), kept.grads.end()), 0.0f);
  }
}

TEST(Recompute, GradientsMatchFiniteDifferences) {
  MpiCommunicator comm(MPI_COMM_SELF, 1, 1);
  const ModelConfig mc = model_shape(2, 2, 8, 13, 6);
  const int T = 5;
  GptModel<double> model(mc, all_targets(0.25f, 3, 5), comm, 1, T, /*recompute=*/true);
  const auto base = random_vector(model.base().size(), 51, 0.5);
  std::copy(base.begin(), base.end(), model.base().begin());
  for (const auto* name : {"h.0.ln_1.weight", "h.1.ln_2.weight", "ln_f.weight"})  // gains near 1
    for (int j = 0; j < 8; ++j) model.base_tensor(name)[j] += 1.0;
  const auto lora = random_vector(model.lora_params().size(), 52, 0.5);
  std::copy(lora.begin(), lora.end(), model.lora_params().begin());
  const Batch batch = random_batch(1, T, 13);
  const MicroBatch mb = batch.micro(0, 1, T);
  const DropoutContext ctx{true, 7, 4, 0};
  model.zero_grads();
  model.step(mb, 4, ctx, true);
  const std::vector<double> analytic = model.lora_grads();
  const auto numeric = numeric_grad([&] { return model.step(mb, 4, ctx, false); }, model.lora_params().data(),
                                    analytic.size(), 1e-5);
  EXPECT_LT(rel_error(analytic, numeric), 1e-6);
}

// What recompute is for: the activations kept for the backward no longer grow with the
// layers beyond one residual-stream row per block input.
TEST(Recompute, KeepsOneBlocksActivations) {
  const ModelConfig mc = model_shape(12, 12, 768, 50257, 1024);
  const LoraConfig lc;
  const MemoryEstimate none = estimate_model_memory(mc, lc, 1, 1, 1024, false);
  const MemoryEstimate full = estimate_model_memory(mc, lc, 1, 1, 1024, true);
  EXPECT_EQ(none.frozen_weights, full.frozen_weights);
  EXPECT_EQ(none.scratch, full.scratch);
  const uint64_t resid = 13ull * 1024 * 768 * 4;  // block inputs + final output, fp32
  const uint64_t block_none = (none.activations - resid) / 12;
  EXPECT_EQ(full.activations, resid + block_none);
  EXPECT_LT(full.activations * 4, none.activations);
}

}  // namespace
}  // namespace lora::test
