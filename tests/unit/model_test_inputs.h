// Inputs the whole-model tests share: a LoRA on every target, and a random batch of tokens
// with a loss mask that leaves some targets out.
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "model/gpt.h"
#include "model/rng.h"

namespace lora::test {

// Every target of the architecture `arch` ("gpt": q k v o fc1 fc2; "llama": q k v o gate up down).
inline LoraConfig all_targets(float dropout, int r = 2, float alpha = 3, const char* arch = "gpt") {
  LoraConfig l;
  l.r = r;
  l.alpha = alpha;
  l.dropout = dropout;
  ModelConfig m;
  m.arch = arch;
  std::fill(std::begin(l.targets), std::end(l.targets), false);
  for (const int t : arch_spec(m).lora_targets) l.targets[t] = true;
  return l;
}

struct Batch {
  std::vector<int32_t> inputs, targets;
  std::vector<float> mask;
  MicroBatch micro(int first, int B, int T) const {
    return MicroBatch{inputs.data() + first * T, targets.data() + first * T, mask.data() + first * T, B, T};
  }
};

// B x T tokens below V; every 4th target is left out of the loss.
inline Batch random_batch(int B, int T, int V) {
  Batch b;
  for (int i = 0; i < B * T; ++i) {
    b.inputs.push_back(static_cast<int32_t>(philox(3, 1, i, 0, 0)[0] % V));
    b.targets.push_back(static_cast<int32_t>(philox(3, 2, i, 0, 0)[0] % V));
    b.mask.push_back(i % 4 == 0 ? 0.0f : 1.0f);
  }
  return b;
}

}  // namespace lora::test
