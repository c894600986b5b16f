// Bytes one rank's GptModel allocates, from the config alone, before anything is allocated:
// the same buffers as the GptModel constructor (model/gpt.cpp), counted in 64-bit. It counts
// only what is certainly allocated (no allocator overhead, no library workspace, no token
// data), so a run it says cannot fit really cannot; `lora_dist plan` (issue 11) will refine it.
#pragma once
#include <cstdint>
#include <string>

#include "model/config.h"

namespace lora {

struct MemoryEstimate {
  uint64_t frozen_weights = 0;  // this rank's shard of the base
  uint64_t lora_state = 0;      // LoRA parameters, gradients, AdamW m and v
  uint64_t full_ft_state = 0;   // full fine-tuning (lora.enabled: false): the base's gradients,
                                // AdamW m and v (the AdamW part is the trainer's, counted here)
  uint64_t activations = 0;     // kept for backward, per micro-batch of train.micro_batch x train.seq_len
                                // (with recompute: the block inputs plus one block's worth)
  uint64_t scratch = 0;         // gradients of activations, LM-head chunk, LoRA scratch
  uint64_t total() const { return frozen_weights + lora_state + full_ft_state + activations + scratch; }
};

// One TP rank of a model with `tp` ranks per replica, micro-batches of B sequences of T tokens,
// with train.recompute full (`recompute`) or none, element size `elem_bytes` (4 for float).
// fused_lm_head: the CPU backend's fused LM head + cross-entropy (one L2-sized tile of logits
// and two int32 per row); false: the CUDA backend's chunk of min(1024, B T) rows x V/tp logits.
MemoryEstimate estimate_model_memory(const ModelConfig& m, const LoraConfig& l, int tp, int B, int T,
                                     bool recompute = false, int elem_bytes = 4, bool fused_lm_head = true);

// Bytes of the LM head's vocabulary-wide scratch for M rows over vocab_local columns, elements
// of elem_bytes: the logits tile (fused) or chunk, its per-row statistics (max, sum exp, target
// logit, weight), and the fused path's row list and targets.
uint64_t lm_head_scratch_bytes(uint64_t M, uint64_t vocab_local, bool fused, int elem_bytes = 4);

// "1.50 GiB", "312.0 MiB", "4096 bytes"
std::string format_bytes(uint64_t n);

}  // namespace lora
