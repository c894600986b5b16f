// Generation's two pieces: incremental decoding with a KV cache must give, at every position,
// the logits of a full forward over the whole prefix (in double, to rounding); and the
// sampler must follow Hugging Face's generate (greedy argmax with the lowest id on a tie;
// temperature, then top-k, then top-p; a draw that depends only on seed and step).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "comm/mpi_communicator.h"
#include "model/gpt.h"
#include "gradcheck.h"
#include "model_test_inputs.h"
#include "tests/model_shape.h"
#include "trainer/generate/sampling.h"

namespace lora::test {
namespace {

// 70 positions cross the training kernel's 64-row attention block; every target has a LoRA
// pair with B != 0, and dropout, which inference must not apply. GPT, and the Llama block
// (a KV cache of n_kv_head heads, RoPE at each new token's position, an untied head).
class KvCacheDecoding : public ::testing::TestWithParam<const char*> {};
INSTANTIATE_TEST_SUITE_P(Arch, KvCacheDecoding, ::testing::Values("gpt", "llama"));

TEST_P(KvCacheDecoding, MatchesFullForwardAtEveryPosition) {
  ModelConfig mc = model_shape(3, 4, 64, 97, 80);
  if (std::string(GetParam()) == "llama") {
    mc.arch = "llama";
    mc.n_kv_head = 2;
    mc.head_dim = 12;
    mc.ffn = 96;
    mc.tie_embeddings = false;
    mc.rope_scaling = RopeScaling{8, 1, 4, 32};
  }
  const LoraConfig lc = all_targets(0.1f, 3, 5, GetParam());
  const int T = 70;
  MpiCommunicator comm(MPI_COMM_SELF, 1, 1);
  GptModel<double> model(mc, lc, comm, 1, mc.context);
  model.init_base_from_seed(5);
  const auto r = random_vector(model.lora_params().size(), 17, 0.3);
  std::copy(r.begin(), r.end(), model.lora_params().begin());
  const Batch tok = random_batch(1, T, mc.vocab_size);
  std::vector<double> full;
  model.logits(tok.micro(0, 1, T), full);
  const int Vl = model.dims().vocab_local;

  KvCache<double> cache = model.make_kv_cache(T);
  std::vector<double> last;
  // A 5-token prefill, single tokens, a 3-token chunk in the middle, single tokens again.
  int pos = 0;
  for (int n : {5, 1, 1, 3}) {
    model.extend(tok.inputs.data() + pos, n, cache, last);
    pos += n;
    ASSERT_EQ(cache.length, pos);
    for (int v = 0; v < Vl; ++v) ASSERT_NEAR(last[v], full[static_cast<size_t>(pos - 1) * Vl + v], 1e-10) << "position " << pos - 1;
  }
  double worst = 0;
  for (; pos < T; ++pos) {
    model.extend(tok.inputs.data() + pos, 1, cache, last);
    for (int v = 0; v < Vl; ++v) worst = std::max(worst, std::abs(last[v] - full[static_cast<size_t>(pos) * Vl + v]));
  }
  EXPECT_LT(worst, 1e-10);
  // A full cache refuses more, without touching the model.
  EXPECT_THROW(model.extend(tok.inputs.data(), 1, cache, last), std::length_error);
}

TEST(KvCacheLimits, ContextLimitIsRefused) {
  const ModelConfig mc = model_shape(1, 2, 16, 11, 8);
  MpiCommunicator comm(MPI_COMM_SELF, 1, 1);
  LoraConfig none = all_targets(0);
  std::fill(std::begin(none.targets), std::end(none.targets), false);
  GptModel<float> model(mc, none, comm, 1, mc.context);
  model.init_base_from_seed(1);
  KvCache<float> cache = model.make_kv_cache(mc.context);
  const std::vector<int32_t> tokens(9, 1);
  std::vector<float> last;
  EXPECT_THROW(model.extend(tokens.data(), 9, cache, last), std::length_error);  // 9 > context 8
  model.extend(tokens.data(), 8, cache, last);
  EXPECT_EQ(cache.length, 8);
}

SamplingConfig sampling(double temperature, int top_k = 0, double top_p = 1.0, uint64_t seed = 7) {
  SamplingConfig c;
  c.temperature = temperature;
  c.top_k = top_k;
  c.top_p = top_p;
  c.seed = seed;
  return c;
}

// Frequencies of each token over n draws (steps 0 .. n-1).
std::map<int, double> frequencies(const std::vector<float>& logits, const SamplingConfig& c, int n) {
  std::map<int, double> f;
  for (int s = 0; s < n; ++s) f[sample_token(logits.data(), static_cast<int>(logits.size()), c, s)] += 1.0 / n;
  return f;
}

// Probabilities 0.1, 0.4, 0.2, 0.3 (token 1 most likely, then 3, 2, 0).
const std::vector<float> kLogits = {std::log(0.1f), std::log(0.4f), std::log(0.2f), std::log(0.3f)};

TEST(Sampling, GreedyIsArgmaxWithLowestIdOnTies) {
  EXPECT_EQ(sample_token(kLogits.data(), 4, sampling(0), 0), 1);
  const std::vector<float> tie = {0.f, 2.f, 1.f, 2.f};
  for (int step = 0; step < 5; ++step) EXPECT_EQ(sample_token(tie.data(), 4, sampling(0), step), 1);
  // top-k 1 and a tiny top-p are greedy at any temperature.
  for (int step = 0; step < 50; ++step) {
    EXPECT_EQ(sample_token(kLogits.data(), 4, sampling(3.0, 1), step), 1);
    EXPECT_EQ(sample_token(kLogits.data(), 4, sampling(3.0, 0, 1e-6), step), 1);
  }
}

// 40000 draws: a frequency's standard deviation is at most 0.0025, so 0.012 is ~5 sigma.
constexpr int kDraws = 40000;
constexpr double kTol = 0.012;

TEST(Sampling, TemperatureOneDrawsTheSoftmax) {
  const auto f = frequencies(kLogits, sampling(1.0), kDraws);
  const double p[4] = {0.1, 0.4, 0.2, 0.3};
  for (int t = 0; t < 4; ++t) EXPECT_NEAR(f.count(t) ? f.at(t) : 0.0, p[t], kTol) << "token " << t;
}

TEST(Sampling, TemperatureSharpensAndFlattens) {
  // T = 0.5: p^2 normalised = (1, 16, 4, 9) / 30; T = 2: sqrt(p) normalised.
  const auto sharp = frequencies(kLogits, sampling(0.5), kDraws);
  const double q[4] = {1 / 30.0, 16 / 30.0, 4 / 30.0, 9 / 30.0};
  for (int t = 0; t < 4; ++t) EXPECT_NEAR(sharp.count(t) ? sharp.at(t) : 0.0, q[t], kTol) << "token " << t;
  const auto flat = frequencies(kLogits, sampling(2.0), kDraws);
  double z = 0, s[4];
  for (int t = 0; t < 4; ++t) z += (s[t] = std::sqrt(std::exp(double(kLogits[t]))));
  for (int t = 0; t < 4; ++t) EXPECT_NEAR(flat.count(t) ? flat.at(t) : 0.0, s[t] / z, kTol) << "token " << t;
}

TEST(Sampling, TopKKeepsTheKMostLikelyRenormalised) {
  const auto f = frequencies(kLogits, sampling(1.0, 2), kDraws);  // tokens 1 and 3: 4/7 and 3/7
  EXPECT_EQ(f.size(), 2u);
  EXPECT_NEAR(f.at(1), 4 / 7.0, kTol);
  EXPECT_NEAR(f.at(3), 3 / 7.0, kTol);
}

TEST(Sampling, TopPKeepsTheSmallestSetReachingP) {
  // Sorted 0.4, 0.3, 0.2, 0.1: p = 0.5 needs two tokens (0.4 < 0.5 <= 0.7), p = 0.4 one,
  // p = 0.75 three (0.7 < 0.75).
  auto f = frequencies(kLogits, sampling(1.0, 0, 0.5), kDraws);
  EXPECT_EQ(f.size(), 2u);
  EXPECT_NEAR(f.at(1), 4 / 7.0, kTol);
  f = frequencies(kLogits, sampling(1.0, 0, 0.4), 2000);
  EXPECT_EQ(f.size(), 1u);
  EXPECT_EQ(f.begin()->first, 1);
  f = frequencies(kLogits, sampling(1.0, 0, 0.75), kDraws);
  EXPECT_EQ(f.size(), 3u);
  EXPECT_EQ(f.count(0), 0u);
  EXPECT_NEAR(f.at(2), 2 / 9.0, kTol);
  // top-k first, then top-p on the renormalised top-k: k 3 -> (4, 3, 2)/9; p 0.5 -> 4/9 < 0.5 <= 7/9.
  f = frequencies(kLogits, sampling(1.0, 3, 0.5), kDraws);
  EXPECT_EQ(f.size(), 2u);
  EXPECT_NEAR(f.at(3), 3 / 7.0, kTol);
}

TEST(Sampling, DrawDependsOnlyOnSeedAndStep) {
  std::vector<float> logits(1000);
  for (int i = 0; i < 1000; ++i) logits[i] = static_cast<float>(std::sin(i * 0.37) * 3);
  std::vector<int> a, b, other;
  for (int s = 0; s < 200; ++s) a.push_back(sample_token(logits.data(), 1000, sampling(1.0, 0, 0.9, 11), s));
  for (int s = 199; s >= 0; --s) b.insert(b.begin(), sample_token(logits.data(), 1000, sampling(1.0, 0, 0.9, 11), s));
  for (int s = 0; s < 200; ++s) other.push_back(sample_token(logits.data(), 1000, sampling(1.0, 0, 0.9, 12), s));
  EXPECT_EQ(a, b);  // order of the calls does not matter
  EXPECT_NE(a, other);
  EXPECT_GT(std::set<int>(a.begin(), a.end()).size(), 20u);
}

}  // namespace
}  // namespace lora::test
