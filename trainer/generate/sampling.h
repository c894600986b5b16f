// Choosing the next token from a model's logits (lora_dist generate), with the knobs and the
// order of Hugging Face's generate: temperature, then top-k, then top-p (nucleus), then one
// draw from the renormalised softmax; temperature 0 is greedy. The draw is counter-based
// (seed, step), so every TP rank holding the same logits picks the same token.
#pragma once
#include <cstdint>
#include <string>

namespace lora {

struct SamplingConfig {
  double temperature = 0;    // 0 (the default): greedy (argmax, the lowest id on a tie)
  int top_k = 0;             // keep the k most likely tokens; 0: all
  double top_p = 1.0;        // keep the fewest most likely tokens whose probability sums to >= top_p; 1: all
  uint64_t seed = 0;

  bool greedy() const { return temperature == 0; }
  std::string describe() const;  // "greedy" or "temperature 0.8, top-k 40, top-p 0.95, seed 1"
};

// The token chosen from logits[V] for generation step `step`.
int sample_token(const float* logits, int V, const SamplingConfig& c, uint64_t step);

}  // namespace lora
