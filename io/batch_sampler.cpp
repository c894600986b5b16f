#include "io/batch_sampler.h"

#include "io/input_error.h"

#include <Random123/philox.h>

#include <limits>
#include <numeric>
#include <stdexcept>
#include <string>
#include <utility>

namespace lora {
namespace {

// Counter word 0: keeps the shuffle's Philox stream apart from the other users
// of the same seed (model/rng.h's RngPurpose values).
constexpr uint32_t kShuffleStream = 0x5348;  // "SH"

uint64_t count_windows(const TokenShard& shard, int seq_len) {
  if (seq_len < 1)
    throw std::runtime_error(shard.path + ": seq_len " + std::to_string(seq_len) +
                             " must be at least 1");
  const uint64_t n = shard.size() < 1 ? 0 : (shard.size() - 1) / uint64_t(seq_len);
  if (n == 0)
    throw InputError(shard.path + ": " + std::to_string(shard.size()) +
                     " tokens are fewer than one window of train.seq_len+1 = " + std::to_string(seq_len + 1));
  return n;
}

// Uniform draw in [0, bound) for step j of the Fisher–Yates pass.
uint64_t philox_below(uint64_t seed, uint64_t epoch, uint32_t j, uint64_t bound) {
  const philox4x32_key_t key = {{uint32_t(seed), uint32_t(seed >> 32)}};
  const philox4x32_ctr_t ctr = {{kShuffleStream, j, uint32_t(epoch), uint32_t(epoch >> 32)}};
  const philox4x32_ctr_t out = philox4x32(ctr, key);
  return ((uint64_t(out.v[0]) << 32) | out.v[1]) % bound;
}

std::vector<uint32_t> shuffled_windows(uint64_t n, uint64_t seed, uint64_t epoch) {
  std::vector<uint32_t> perm(n);
  std::iota(perm.begin(), perm.end(), 0u);
  for (uint64_t j = n - 1; j > 0; --j)
    std::swap(perm[j], perm[philox_below(seed, epoch, uint32_t(j), j + 1)]);
  return perm;
}

}  // namespace

BatchSampler::BatchSampler(const TokenShard& shard, int seq_len, uint64_t seed, bool shuffle)
    : shard_(shard),
      seq_len_(seq_len),
      seed_(seed),
      shuffle_(shuffle),
      windows_per_epoch_(count_windows(shard, seq_len)) {
  // The permutation stores window indices, and the Philox counter carries the
  // position, in 32 bits.
  if (shuffle && windows_per_epoch_ > std::numeric_limits<uint32_t>::max())
    throw std::runtime_error(shard.path + ": too many windows to shuffle (" +
                             std::to_string(windows_per_epoch_) + ")");
  // Tokens go to the model as int32.
  if (shard.vocab_size > uint32_t(std::numeric_limits<int32_t>::max()))
    throw std::runtime_error(shard.path + ": vocab_size " + std::to_string(shard.vocab_size) +
                             " does not fit in int32 token ids");
}

const std::vector<uint32_t>& BatchSampler::permutation(uint64_t epoch) const {
  if (cached_perm_.empty() || cached_epoch_ != epoch) {
    cached_perm_ = shuffled_windows(windows_per_epoch_, seed_, epoch);
    cached_epoch_ = epoch;
  }
  return cached_perm_;
}

uint64_t BatchSampler::window_index(uint64_t sample) const {
  const uint64_t i = sample % windows_per_epoch_;
  return shuffle_ ? permutation(sample / windows_per_epoch_)[i] : i;
}

void BatchSampler::fill(uint64_t first_sample, int n_samples, int32_t* inputs, int32_t* targets,
                        float* loss_mask) const {
  const size_t T = size_t(seq_len_);
  for (int s = 0; s < n_samples; ++s) {
    const uint64_t start = window_start(first_sample + uint64_t(s));
    const size_t row = size_t(s) * T;
    for (size_t t = 0; t < T; ++t) {
      inputs[row + t] = int32_t(shard_.tokens[start + t]);
      targets[row + t] = int32_t(shard_.tokens[start + t + 1]);
      loss_mask[row + t] = shard_.has_mask() ? float(shard_.mask[start + t + 1]) : 1.0f;
    }
  }
}

double BatchSampler::count_loss_tokens(uint64_t first_sample, int n_samples) const {
  if (!shard_.has_mask()) return double(n_samples) * seq_len_;
  double count = 0;
  for (int s = 0; s < n_samples; ++s) {
    const uint64_t start = window_start(first_sample + uint64_t(s));
    for (int t = 1; t <= seq_len_; ++t) count += shard_.mask[start + t];
  }
  return count;
}

}  // namespace lora
