// The whole model in double: every LoRA parameter's gradient against central differences
// of the loss, with dropout on, gradient accumulation over two micro-batches, random base
// weights (biases and LayerNorm gains included) and a loss mask; plus LoRA's semantics.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "comm/mpi_communicator.h"
#include "gradcheck.h"
#include "model_test_inputs.h"
#include "model/gpt.h"
#include "tests/model_shape.h"

namespace lora::test {
namespace {

ModelConfig tiny_model() { return model_shape(2, 2, 8, 13, 6); }

// Overwrites every base weight (padding rows stay zero: V=13 is not padded at tp=1).
void randomise(std::vector<double>& v, uint32_t stream, double scale) {
  const auto r = random_vector(v.size(), stream, scale);
  std::copy(r.begin(), r.end(), v.begin());
}

// Every tensor of `layout`: its analytic gradient equals central differences to 1e-6, and is
// not all zero (a gradient that never arrives would pass the first check).
void expect_central_differences(const ParamLayout& layout, const std::vector<double>& analytic,
                                const std::vector<double>& numeric) {
  for (const TensorSpec& s : layout.tensors) {
    std::vector<double> a(analytic.begin() + s.offset, analytic.begin() + s.offset + s.local_size());
    std::vector<double> n(numeric.begin() + s.offset, numeric.begin() + s.offset + s.local_size());
    EXPECT_LT(rel_error(a, n), 1e-6) << s.name;
    EXPECT_GT(std::abs(*std::max_element(a.begin(), a.end(), [](double x, double y) { return std::abs(x) < std::abs(y); })),
              0.0)
        << s.name << " has an all-zero gradient";
  }
}

class ModelGradcheck : public ::testing::Test {
 protected:
  MpiCommunicator comm{MPI_COMM_SELF, 1, 1};
};

TEST_F(ModelGradcheck, EveryLoraParameterWithDropoutAndAccumulation) {
  const int B = 2, T = 5;
  GptModel<double> model(tiny_model(), all_targets(0.25f), comm, 1, T);
  randomise(model.base(), 31, 0.5);
  for (const auto* name : {"h.0.ln_1.weight", "h.1.ln_2.weight", "ln_f.weight"})  // gains near 1
    for (int j = 0; j < 8; ++j) model.base_tensor(name)[j] += 1.0;
  randomise(model.lora_params(), 32, 0.5);  // B != 0, or dA would be zero
  const Batch batch = random_batch(B, T, 13);
  const double loss_tokens = std::count(batch.mask.begin(), batch.mask.end(), 1.0f);

  // One optimizer step's loss: two micro-batches of one sequence each, as the trainer does.
  auto loss = [&](bool grad) {
    double total = 0;
    for (int i = 0; i < B; ++i)
      total += model.step(batch.micro(i, 1, T), loss_tokens, DropoutContext{true, 7, 4, static_cast<uint32_t>(i * T)}, grad);
    return total;
  };
  model.zero_grads();
  loss(true);
  const std::vector<double> analytic = model.lora_grads();
  const auto numeric = numeric_grad([&] { return loss(false); }, model.lora_params().data(), analytic.size(), 1e-5);
  expect_central_differences(model.lora_layout(), analytic, numeric);
}

// Full fine-tuning (lora.enabled: false): the gradient of every base tensor, the tied token
// table (LM head + embedding), positions, LayerNorms, every weight and bias, accumulated over
// two micro-batches, with recompute off and on (same gradients bit for bit).
TEST_F(ModelGradcheck, FullFineTuningEveryBaseTensor) {
  const int B = 2, T = 5;
  LoraConfig full;
  full.enabled = false;
  std::vector<double> first;
  for (bool recompute : {false, true}) {
    GptModel<double> model(tiny_model(), full, comm, 1, T, recompute);
    ASSERT_TRUE(model.full_finetuning());
    ASSERT_EQ(model.lora_params().size(), 0u);
    randomise(model.base(), 33, 0.5);
    for (const auto* name : {"h.0.ln_1.weight", "h.1.ln_2.weight", "ln_f.weight"})
      for (int j = 0; j < 8; ++j) model.base_tensor(name)[j] += 1.0;
    const Batch batch = random_batch(B, T, 13);
    const double loss_tokens = std::count(batch.mask.begin(), batch.mask.end(), 1.0f);
    auto loss = [&](bool grad) {
      double total = 0;
      for (int i = 0; i < B; ++i) total += model.step(batch.micro(i, 1, T), loss_tokens, DropoutContext{}, grad);
      return total;
    };
    model.zero_grads();
    loss(true);
    const std::vector<double> analytic = model.base_grads();
    if (recompute) {
      EXPECT_TRUE(analytic == first) << "recompute changed the full fine-tuning gradients";
      continue;
    }
    first = analytic;
    const auto numeric = numeric_grad([&] { return loss(false); }, model.base().data(), analytic.size(), 1e-5);
    ASSERT_EQ(model.base_layout().tensors.size(), 4u + 12u * 2);
    expect_central_differences(model.base_layout(), analytic, numeric);
  }
}

// The Llama block in double: grouped-query attention (4 query heads on 2 KV heads, head_dim
// 4 != d / n_head), RoPE with llama3 scaling, SwiGLU of width 12, q/k/v biases, RMSNorm gains
// away from 1, an untied head. Every LoRA factor (q k v o gate up down, dropout on), and in
// full fine-tuning every base tensor, against central differences; recompute gives the same
// gradients bit for bit.
ModelConfig tiny_llama() {
  ModelConfig m = model_shape(2, 4, 8, 13, 6);
  m.arch = "llama";
  m.n_kv_head = 2;
  m.head_dim = 4;
  m.ffn = 12;
  m.qkv_bias = true;
  m.tie_embeddings = false;
  m.rope_theta = 100;
  m.rope_scaling = RopeScaling{4, 1, 2, 8};
  return m;
}

TEST_F(ModelGradcheck, LlamaEveryLoraParameterAndEveryBaseTensor) {
  const int B = 2, T = 5;
  LoraConfig full;
  full.enabled = false;
  for (const bool lora : {true, false}) {
    std::vector<double> without_recompute;
    for (const bool recompute : {false, true}) {
      SCOPED_TRACE(std::string(lora ? "LoRA" : "full fine-tuning") + (recompute ? ", recompute" : ""));
      GptModel<double> model(tiny_llama(), lora ? all_targets(0.25f, 2, 3, "llama") : full, comm, 1, T, recompute);
      randomise(model.base(), 35, 0.5);
      for (const auto* name : {"h.0.ln_1.weight", "h.1.ln_2.weight", "ln_f.weight"})
        for (int j = 0; j < 8; ++j) model.base_tensor(name)[j] += 1.0;
      if (lora) randomise(model.lora_params(), 36, 0.5);
      const Batch batch = random_batch(B, T, 13);
      const double loss_tokens = std::count(batch.mask.begin(), batch.mask.end(), 1.0f);
      auto loss = [&](bool grad) {
        double total = 0;
        for (int i = 0; i < B; ++i)
          total += model.step(batch.micro(i, 1, T), loss_tokens, DropoutContext{lora, 7, 4, static_cast<uint32_t>(i * T)},
                              grad);
        return total;
      };
      model.zero_grads();
      loss(true);
      const std::vector<double> analytic = model.trainable_grads();
      if (recompute) {
        EXPECT_TRUE(analytic == without_recompute) << "recompute changed the gradients";
        continue;
      }
      without_recompute = analytic;
      const auto numeric = numeric_grad([&] { return loss(false); }, model.trainable_params().data(), analytic.size(), 1e-5);
      if (!lora) {
        ASSERT_NE(model.base_layout().find("lm_head"), nullptr);
      }
      expect_central_differences(model.trainable_layout(), analytic, numeric);
    }
  }
}

TEST_F(ModelGradcheck, ZeroBGivesTheBaseModelsLogits) {
  const int T = 5;
  const Batch batch = random_batch(1, T, 13);
  LoraConfig none = all_targets(0.0f);
  std::fill(std::begin(none.targets), std::end(none.targets), false);
  none.targets[kQ] = true;  // the smallest LoRA: logits of a q-only model with B=0
  GptModel<double> base(tiny_model(), none, comm, 1, T), adapted(tiny_model(), all_targets(0.1f), comm, 1, T);
  base.init_base_from_seed(5);
  adapted.init_base_from_seed(5);
  base.init_lora(9);
  adapted.init_lora(9);  // A random, B = 0
  std::vector<double> l1, l2;
  base.logits(batch.micro(0, 1, T), l1);
  adapted.logits(batch.micro(0, 1, T), l2);
  EXPECT_EQ(l1, l2);
}

TEST_F(ModelGradcheck, MergedEqualsUnmerged) {
  const int T = 5;
  const Batch batch = random_batch(1, T, 13);
  GptModel<double> model(tiny_model(), all_targets(0.0f), comm, 1, T);
  model.init_base_from_seed(5);
  randomise(model.lora_params(), 33, 0.3);
  const std::vector<double> base_before = model.base();
  std::vector<double> unmerged, merged, after;
  model.logits(batch.micro(0, 1, T), unmerged);
  model.merge_lora(true);
  model.logits(batch.micro(0, 1, T), merged);
  EXPECT_LT(rel_error(unmerged, merged), 1e-12);
  EXPECT_NE(model.base(), base_before);
  model.merge_lora(false);
  model.logits(batch.micro(0, 1, T), after);
  EXPECT_LT(rel_error(model.base(), base_before), 1e-14);
  EXPECT_LT(rel_error(unmerged, after), 1e-12);
}

TEST_F(ModelGradcheck, DisabledTargetsHaveNoParameters) {
  LoraConfig qv = all_targets(0.0f);
  std::fill(std::begin(qv.targets), std::end(qv.targets), false);
  qv.targets[kQ] = qv.targets[kV] = true;
  GptModel<double> model(tiny_model(), qv, comm, 1, 4);
  for (const TensorSpec& s : model.lora_layout().tensors)
    for (const char* off : {".lora.k.", ".lora.o.", ".lora.fc1.", ".lora.fc2."})
      EXPECT_EQ(s.name.find(off), std::string::npos) << s.name;
  // 2 layers x (q, v) x (A [2x8] + B [8x2]) = 128 parameters, and no more.
  EXPECT_EQ(model.lora_params().size(), 2u * 2u * (16u + 16u));
  EXPECT_EQ(model.lora_grads().size(), model.lora_params().size());
}

TEST_F(ModelGradcheck, LoraInitIsKaimingUniformAndZeroB) {
  GptModel<double> model(tiny_model(), all_targets(0.0f), comm, 1, 4);
  model.init_lora(11);
  for (const TensorSpec& s : model.lora_layout().tensors) {
    const double* p = model.lora_params().data() + s.offset;
    const double bound = 1.0 / std::sqrt(static_cast<double>(s.cols));
    double max_abs = 0;
    for (size_t i = 0; i < s.local_size(); ++i) max_abs = std::max(max_abs, std::abs(p[i]));
    if (s.name.back() == 'B') EXPECT_EQ(max_abs, 0.0) << s.name;
    else EXPECT_TRUE(max_abs > 0.5 * bound && max_abs <= bound) << s.name << " max " << max_abs;
  }
}

}  // namespace
}  // namespace lora::test
