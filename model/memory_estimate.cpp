#include "model/memory_estimate.h"

#include <algorithm>
#include <cstdio>

#include "model/param_layout.h"

namespace lora {

MemoryEstimate estimate_model_memory(const ModelConfig& m, const LoraConfig& l, int tp, int B, int T,
                                     bool recompute, int elem_bytes) {
  // Everything in 64-bit: the point is to refuse shapes whose sizes overflow 32 bits.
  const uint64_t M = uint64_t(B) * uint64_t(T), d = uint64_t(m.d_model), L = uint64_t(m.n_layer);
  const uint64_t dl = d / tp, ffl = 4 * d / tp, heads_local = uint64_t(m.n_head) / tp;
  const uint64_t vocab_local = (uint64_t(m.vocab_size) + tp - 1) / tp;
  const uint64_t e = uint64_t(elem_bytes);

  // Frozen base (model/param_layout.cpp base_layout), per rank.
  // The 2-D matrices take 2 bytes each with model.dtype bf16; LayerNorms and biases stay.
  const uint64_t matrices = vocab_local * d + uint64_t(m.context) * d + L * ((3 * dl) * d + dl * d + ffl * d + d * ffl);
  const uint64_t vectors = L * (4 * d /*ln*/ + 3 * dl + d + ffl + d /*biases*/) + 2 * d /*ln_f*/;
  const uint64_t mat_bytes = m.dtype == "bf16" ? 2 : e;
  MemoryEstimate est;
  est.frozen_weights = mat_bytes * matrices + e * vectors;

  // LoRA (model/param_layout.cpp lora_layout): a column-parallel pair holds A whole and 1/tp
  // of B's rows, a row-parallel pair 1/tp of A's columns and B whole.
  uint64_t lora = 0, lora_saved = 0, lora_widest_dropout = 0;
  for (int t = 0; t < kNumTargets; ++t) {
    if (!l.enabled || !l.targets[t]) continue;
    int out = 0, in = 0;
    lora_target_shape(m, t, &out, &in);
    const bool row = is_row_parallel(t);
    const uint64_t r = uint64_t(l.r), in_local = row ? uint64_t(in) / tp : uint64_t(in);
    const uint64_t out_local = row ? uint64_t(out) : (uint64_t(out) + tp - 1) / tp;
    lora += r * in_local + out_local * r;
    lora_saved += M * r + (l.dropout > 0 ? M * in_local : 0);  // LoraAdapter::saved_size
    if (l.dropout > 0) lora_widest_dropout = std::max(lora_widest_dropout, in_local);
  }
  const uint64_t lora_scratch = (lora > 0 ? M * uint64_t(l.r) : 0) + M * lora_widest_dropout;  // du, dx_drop
  est.lora_state = e * 4 * L * lora;  // params, grads, AdamW m, v
  if (!l.enabled) est.full_ft_state = 3 * e * (matrices + vectors);  // fp32 only (config_loader)

  // model/gpt.cpp: residual stream per block input, and the BlockActivations of every
  // layer, or of one with recompute.
  const uint64_t per_block_acts = 3 * M * d + 4 * M + M * 3 * dl + M * dl + uint64_t(B) * heads_local * T +
                                  2 * M * ffl + lora_saved;
  est.activations = e * ((L + 1) * M * d + (recompute ? 1 : L) * per_block_acts);
  const uint64_t chunk = std::min<uint64_t>(1024, M);
  est.scratch = e * (5 * M * d + 2 * M + M * 3 * dl + M * dl + M * ffl + chunk * vocab_local + 4 * chunk +
                     lora_scratch);
  return est;
}

std::string format_bytes(uint64_t n) {
  char buf[48];
  if (n >= (uint64_t(1) << 30)) std::snprintf(buf, sizeof buf, "%.2f GiB", n / 1073741824.0);
  else if (n >= (uint64_t(1) << 20)) std::snprintf(buf, sizeof buf, "%.1f MiB", n / 1048576.0);
  else std::snprintf(buf, sizeof buf, "%llu bytes", static_cast<unsigned long long>(n));
  return buf;
}

}  // namespace lora
