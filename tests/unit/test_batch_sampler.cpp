// BatchSampler: window layout, loss-mask alignment, determinism, split
// invariance, per-epoch permutations; and the shipped demo shards.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "io/batch_sampler.h"
#include "io/token_shard.h"

namespace lora {
namespace {

// Token i has value i, so every token names its own position in the shard.
TokenShard positional_shard(size_t n_tokens, bool with_mask) {
  TokenShard shard;
  shard.path = "positional.bin";
  shard.vocab_size = uint32_t(n_tokens);
  shard.tokens.resize(n_tokens);
  std::iota(shard.tokens.begin(), shard.tokens.end(), 0u);
  if (with_mask)
    for (size_t i = 0; i < n_tokens; ++i) shard.mask.push_back(uint8_t(i % 3 != 0));
  return shard;
}

struct Batch {
  std::vector<int32_t> inputs, targets;
  std::vector<float> loss_mask;
};

Batch fill(const BatchSampler& sampler, uint64_t first, int n) {
  const size_t len = size_t(n) * sampler.seq_len();
  Batch b{std::vector<int32_t>(len), std::vector<int32_t>(len), std::vector<float>(len)};
  sampler.fill(first, n, b.inputs.data(), b.targets.data(), b.loss_mask.data());
  return b;
}

void append(Batch& into, const Batch& from) {
  into.inputs.insert(into.inputs.end(), from.inputs.begin(), from.inputs.end());
  into.targets.insert(into.targets.end(), from.targets.begin(), from.targets.end());
  into.loss_mask.insert(into.loss_mask.end(), from.loss_mask.begin(), from.loss_mask.end());
}

void expect_same(const Batch& a, const Batch& b) {
  EXPECT_EQ(a.inputs, b.inputs);
  EXPECT_EQ(a.targets, b.targets);
  EXPECT_EQ(a.loss_mask, b.loss_mask);
}

// The windows of one epoch, in the order the sampler visits them.
std::vector<uint64_t> epoch_order(const BatchSampler& sampler, uint64_t epoch) {
  std::vector<uint64_t> order;
  const uint64_t w = sampler.windows_per_epoch();
  for (uint64_t g = epoch * w; g < (epoch + 1) * w; ++g) order.push_back(sampler.window_index(g));
  return order;
}

TEST(BatchSampler, WindowsPerEpoch) {
  const TokenShard shard = positional_shard(101, false);
  EXPECT_EQ(BatchSampler(shard, 10, 1, false).windows_per_epoch(), 10u);  // uses all 101
  EXPECT_EQ(BatchSampler(shard, 7, 1, false).windows_per_epoch(), 14u);
  EXPECT_EQ(BatchSampler(shard, 100, 1, true).windows_per_epoch(), 1u);
}

TEST(BatchSampler, TooShortShardNamesTheFile) {
  const TokenShard shard = positional_shard(10, false);
  try {
    BatchSampler(shard, 10, 1, false);
    ADD_FAILURE() << "no error for a shard shorter than one window";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()).rfind("positional.bin:", 0), 0u) << e.what();
  }
  EXPECT_THROW(BatchSampler(shard, 0, 1, false), std::runtime_error);
}

TEST(BatchSampler, WithoutShuffleWindowsTileTheShardInOrder) {
  const TokenShard shard = positional_shard(101, false);
  const BatchSampler sampler(shard, 10, 5, false);
  const Batch b = fill(sampler, 8, 4);  // crosses into epoch 1 after two samples
  const int expected_window[4] = {8, 9, 0, 1};
  for (int s = 0; s < 4; ++s)
    for (int t = 0; t < 10; ++t) EXPECT_EQ(b.inputs[s * 10 + t], expected_window[s] * 10 + t);
}

TEST(BatchSampler, TargetsAreInputsShiftedByOne) {
  const TokenShard shard = positional_shard(1000, true);
  const BatchSampler sampler(shard, 16, 3, true);
  const Batch b = fill(sampler, 0, 2 * int(sampler.windows_per_epoch()));
  for (size_t i = 0; i < b.inputs.size(); ++i) EXPECT_EQ(b.targets[i], b.inputs[i] + 1);
}

TEST(BatchSampler, LossMaskIsTheMaskOfTheTargetToken) {
  const TokenShard shard = positional_shard(1000, true);
  const BatchSampler sampler(shard, 16, 3, true);
  const Batch b = fill(sampler, 0, 100);
  for (size_t i = 0; i < b.targets.size(); ++i)
    EXPECT_EQ(b.loss_mask[i], float(shard.mask[b.targets[i]])) << "at " << i;
  EXPECT_NE(std::count(b.loss_mask.begin(), b.loss_mask.end(), 0.0f), 0);
}

TEST(BatchSampler, NoMaskScoresEveryTarget) {
  const TokenShard shard = positional_shard(1000, false);
  const BatchSampler sampler(shard, 16, 3, true);
  const Batch b = fill(sampler, 5, 7);
  EXPECT_EQ(b.loss_mask, std::vector<float>(7 * 16, 1.0f));
  EXPECT_EQ(sampler.count_loss_tokens(5, 7), 7.0 * 16);
}

TEST(BatchSampler, CountLossTokensIsTheSumOfTheMask) {
  const TokenShard shard = positional_shard(1000, true);
  const BatchSampler sampler(shard, 16, 9, true);
  for (uint64_t first : {0u, 30u, 61u}) {
    const Batch b = fill(sampler, first, 20);
    const double sum = std::accumulate(b.loss_mask.begin(), b.loss_mask.end(), 0.0);
    EXPECT_EQ(sampler.count_loss_tokens(first, 20), sum) << "first sample " << first;
  }
}

TEST(BatchSampler, SameSeedSameBatches) {
  const TokenShard shard = positional_shard(1000, true);
  const BatchSampler a(shard, 16, 42, true), b(shard, 16, 42, true);
  expect_same(fill(a, 100, 50), fill(b, 100, 50));
  // Visiting another epoch in between (a new cached permutation) changes nothing.
  const Batch before = fill(a, 7, 3);
  fill(a, 500, 3);
  expect_same(before, fill(a, 7, 3));
}

TEST(BatchSampler, BatchesDoNotDependOnHowTheyAreSplit) {
  const TokenShard shard = positional_shard(1000, true);
  const BatchSampler sampler(shard, 16, 42, true);
  const uint64_t first = sampler.windows_per_epoch() - 5;  // the batch spans two epochs
  const Batch whole = fill(sampler, first, 24);
  for (int k : {1, 5, 11, 23}) {
    Batch split = fill(sampler, first, k);
    append(split, fill(sampler, first + k, 24 - k));
    expect_same(whole, split);
  }
  // Many micro-batches, as data-parallel ranks would draw them.
  Batch pieces;
  for (int s = 0; s < 24; s += 3) append(pieces, fill(sampler, first + s, 3));
  expect_same(whole, pieces);
}

TEST(BatchSampler, ShuffleVisitsEveryWindowOnceAnEpoch) {
  const TokenShard shard = positional_shard(1000, false);
  const BatchSampler sampler(shard, 16, 7, true);
  std::vector<uint64_t> all(sampler.windows_per_epoch());
  std::iota(all.begin(), all.end(), 0u);
  for (uint64_t epoch = 0; epoch < 4; ++epoch) {
    std::vector<uint64_t> order = epoch_order(sampler, epoch);
    EXPECT_NE(order, all) << "epoch " << epoch << " is not shuffled";
    std::sort(order.begin(), order.end());
    EXPECT_EQ(order, all) << "epoch " << epoch << " is not a permutation";
  }
}

TEST(BatchSampler, FillReadsTheShuffledWindow) {
  const TokenShard shard = positional_shard(1000, false);
  const BatchSampler sampler(shard, 16, 7, true);
  const Batch b = fill(sampler, 60, 10);
  for (int s = 0; s < 10; ++s) EXPECT_EQ(uint64_t(b.inputs[s * 16]), sampler.window_index(60 + s) * 16);
}

TEST(BatchSampler, ShuffleDiffersBetweenEpochsAndSeeds) {
  const TokenShard shard = positional_shard(1000, false);
  const BatchSampler a(shard, 16, 7, true), b(shard, 16, 8, true);
  const uint64_t high_seed = 7 + (uint64_t(1) << 32);  // differs only in the key's high word
  const BatchSampler c(shard, 16, high_seed, true);
  EXPECT_NE(epoch_order(a, 0), epoch_order(a, 1));
  EXPECT_NE(epoch_order(a, 1), epoch_order(a, 2));
  EXPECT_NE(epoch_order(a, 0), epoch_order(b, 0));
  EXPECT_NE(epoch_order(a, 0), epoch_order(c, 0));
}

// Pins the documented Philox keying: a change here would silently change the
// data order of every run, and what a resumed run reads next.
TEST(BatchSampler, ShuffleOrderIsPinned) {
  const TokenShard shard = positional_shard(101, false);
  const BatchSampler sampler(shard, 10, 42, true);
  EXPECT_EQ(epoch_order(sampler, 0), (std::vector<uint64_t>{4, 7, 5, 3, 8, 9, 2, 6, 1, 0}));
  EXPECT_EQ(epoch_order(sampler, 1), (std::vector<uint64_t>{3, 4, 9, 1, 0, 6, 8, 2, 7, 5}));
}

// The shipped demo data: data/make_demo_data.py's output, as committed.
TEST(DemoShard, TrainAndValLoadWithAByteVocabAndAMixedMask) {
  for (const char* name : {"demo_train.bin", "demo_val.bin"}) {
    SCOPED_TRACE(name);
    const TokenShard shard = read_token_shard(std::string(LORA_SOURCE_DIR) + "/data/" + name);
    EXPECT_EQ(shard.vocab_size, 256u);
    ASSERT_TRUE(shard.has_mask());
    const size_t scored = size_t(std::count(shard.mask.begin(), shard.mask.end(), 1));
    EXPECT_GT(scored, 0u);
    EXPECT_LT(scored, shard.size());
    // Every record ends with a scored newline; prompts are never scored.
    EXPECT_EQ(shard.tokens.back(), uint32_t('\n'));
    EXPECT_EQ(shard.mask.back(), 1);
    EXPECT_EQ(shard.mask.front(), 0);
    const BatchSampler sampler(shard, 64, 42, true);  // the demo model's context
    EXPECT_GT(sampler.count_loss_tokens(0, 8), 0.0);
  }
}

}  // namespace
}  // namespace lora
