// Deterministic training batches from a token shard.
//
// The shard is cut into windows of seq_len+1 tokens; window w starts at token
// w*seq_len, so consecutive windows share one token (the last target of w is the
// first input of w+1) and no target is ever skipped:
//   inputs  = tokens[w*T     .. w*T + T-1]
//   targets = tokens[w*T + 1 .. w*T + T  ]
// windows_per_epoch = (n_tokens - 1) / T; a leftover tail shorter than a window
// is never used.
//
// Samples are numbered globally from 0 across the whole run: sample g belongs to
// epoch g / windows_per_epoch and takes position i = g % windows_per_epoch in
// it. Without shuffle it reads window i; with shuffle it reads perm_epoch[i],
// where perm_epoch is a Fisher–Yates permutation driven by Philox-4x32-10
// (Random123), a counter-based RNG, so the permutation is a pure function of
// (seed, epoch). Step j of the pass (j = windows_per_epoch-1 down to 1) swaps
// position j with position ((out[0] << 32) | out[1]) % (j + 1) (bias < 2^-32), where
//   out     = philox4x32(counter, key)
//   key     = {seed & 0xffffffff, seed >> 32}
//   counter = {0x5348 ("SH", the shuffle stream), j, epoch & 0xffffffff, epoch >> 32}
// Counter word 0 is a stream tag, as model/rng.h's RngPurpose (1..3) is, so the
// shuffle never reuses a counter of LoRA init or dropout under the same seed.
//
// Because every sample is a function of (seed, g) alone, a batch gives the same
// data however it is split across micro-batches, data-parallel ranks or resumes:
// fill(g0, n) equals fill(g0, k) followed by fill(g0 + k, n - k).
#pragma once
#include <cstdint>
#include <vector>

#include "io/token_shard.h"

namespace lora {

// Not thread-safe: the permutation of the most recent epoch is cached in
// mutable members, even in the const methods. Use one sampler per thread.
class BatchSampler {
 public:
  // Keeps a reference to `shard`, which must outlive the sampler. Throws
  // std::runtime_error naming the shard's file when seq_len < 1 or the shard is
  // too short for one window of seq_len+1 tokens.
  BatchSampler(const TokenShard& shard, int seq_len, uint64_t seed, bool shuffle);

  uint64_t windows_per_epoch() const { return windows_per_epoch_; }
  int seq_len() const { return seq_len_; }

  // Which window global sample `sample` reads (see the header comment).
  uint64_t window_index(uint64_t sample) const;

  // Samples first_sample .. first_sample+n_samples-1, row-major: each buffer
  // holds n_samples*seq_len values. loss_mask[t] is the shard's mask of
  // targets[t] (1.0f or 0.0f), all 1.0f when the shard has no mask.
  void fill(uint64_t first_sample, int n_samples, int32_t* inputs, int32_t* targets,
            float* loss_mask) const;

  // Sum of loss_mask over those samples: the number of scored targets, which
  // the trainer divides the summed loss by (over the global batch).
  double count_loss_tokens(uint64_t first_sample, int n_samples) const;

 private:
  const std::vector<uint32_t>& permutation(uint64_t epoch) const;
  uint64_t window_start(uint64_t sample) const { return window_index(sample) * seq_len_; }

  const TokenShard& shard_;
  int seq_len_;
  uint64_t seed_;
  bool shuffle_;
  uint64_t windows_per_epoch_;

  mutable uint64_t cached_epoch_ = 0;
  mutable std::vector<uint32_t> cached_perm_;  // empty = nothing cached yet
};

}  // namespace lora
