#include "model/memory_estimate.h"

#include "model/ops/cpu/fused_lm_head.h"

#include <algorithm>
#include <cstdio>

#include "model/arch.h"
#include "model/nf4_weight.h"
#include "model/param_layout.h"

namespace lora {

MemoryEstimate estimate_model_memory(const ModelConfig& m, const LoraConfig& l, int tp, int B, int T,
                                     bool recompute, int elem_bytes, bool fused_lm_head) {
  // Everything in 64-bit: the point is to refuse shapes whose sizes overflow 32 bits.
  const ArchSpec a = arch_spec(m);
  const uint64_t M = uint64_t(B) * uint64_t(T), d = uint64_t(a.d_model), L = uint64_t(a.n_layer);
  const uint64_t hd = uint64_t(a.head_dim), heads_local = uint64_t(a.n_head) / tp;
  const uint64_t ql = heads_local * hd, kvl = uint64_t(a.n_kv_head) / tp * hd, qkvl = ql + 2 * kvl;
  const uint64_t ffl = uint64_t(a.ffn) / tp, upl = uint64_t(a.mlp_up_width()) / tp;  // upl: fc, or gate|up
  const uint64_t vocab_local = (uint64_t(a.vocab) + tp - 1) / tp;
  const uint64_t e = uint64_t(elem_bytes);
  const bool swiglu = a.mlp == MlpKind::SwiGlu;

  // Frozen base (model/param_layout.cpp base_layout), per rank.
  // The 2-D matrices take 2 bytes each with model.dtype bf16; norms and biases stay.
  const uint64_t matrices = vocab_local * d * (a.tied_head ? 1 : 2) +
                            (a.position == PositionKind::Learned ? uint64_t(a.context) * d : 0) +
                            L * (qkvl * d + d * ql + upl * d + d * ffl);
  const uint64_t norm = (a.norm_bias ? 2 : 1) * d;
  const uint64_t biases = (a.qkv_bias ? qkvl : 0) + (a.o_bias ? d : 0) + (a.mlp_bias ? upl + d : 0);
  const uint64_t vectors = L * (2 * norm + biases) + norm /*ln_f*/;
  const uint64_t mat_bytes = m.dtype == "bf16" ? 2 : e;
  MemoryEstimate est;
  est.frozen_weights = mat_bytes * matrices + e * vectors;
  if (m.dtype == "nf4") {  // the embeddings (and head) in bf16, the blocks' matrices NF4 shards
    const uint64_t embeddings = vocab_local * d * (a.tied_head ? 1 : 2) +
                                (a.position == PositionKind::Learned ? uint64_t(a.context) * d : 0);
    const uint64_t qw = a.q_width(), kvw = a.kv_width(), ff = a.ffn;
    const uint64_t qkv_nested = a.separate_projections
                                    ? nf4_nested_scales(qw * d) + 2 * nf4_nested_scales(kvw * d)
                                    : nf4_nested_scales((qw + 2 * kvw) * d);
    const uint64_t up_nested = a.separate_projections && swiglu ? 2 * nf4_nested_scales(ff * d)
                                                                 : nf4_nested_scales(uint64_t(a.mlp_up_width()) * d);
    const uint64_t block = nf4_shard_layout(qkvl, d, qkv_nested).bytes + nf4_shard_layout(d, ql, nf4_nested_scales(d * qw)).bytes +
                           nf4_shard_layout(upl, d, up_nested).bytes + nf4_shard_layout(d, ffl, nf4_nested_scales(d * ff)).bytes;
    est.frozen_weights = 2 * embeddings + L * block + e * vectors;
  }

  // LoRA (model/param_layout.cpp lora_layout): a column-parallel pair holds A whole and 1/tp
  // of B's rows, a row-parallel pair 1/tp of A's columns and B whole.
  uint64_t lora = 0, lora_saved = 0, lora_widest_dropout = 0;
  for (const int t : a.lora_targets) {
    if (!l.enabled || !l.targets[t]) continue;
    int out = 0, in = 0;
    lora_target_shape(a, t, &out, &in);
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
  const uint64_t per_block_acts = 3 * M * d + 4 * M + M * qkvl + M * ql + uint64_t(B) * heads_local * T + M * upl +
                                  M * ffl + lora_saved;
  est.activations = e * ((L + 1) * M * d + (recompute ? 1 : L) * per_block_acts);
  const uint64_t rope_tables = a.position == PositionKind::Rotary ? uint64_t(a.context) * (hd / 2) * 2 : 0;
  est.scratch = e * (5 * M * d + 2 * M + M * qkvl + M * ql + M * upl + (swiglu ? M * ffl : 0) + lora_scratch +
                     rope_tables) +
                lm_head_scratch_bytes(M, vocab_local, fused_lm_head, elem_bytes);
  return est;
}

uint64_t lm_head_scratch_bytes(uint64_t M, uint64_t vocab_local, bool fused, int elem_bytes) {
  const uint64_t chunk = std::min<uint64_t>(1024, M), e = uint64_t(elem_bytes);  // model/gpt.cpp kLmHeadChunk
  if (!fused) return e * (chunk * vocab_local + 4 * chunk);
  const uint64_t tile = std::min<uint64_t>(kLmTileRows, M) * std::min<uint64_t>(kLmTileCols, vocab_local);
  return e * (tile + 4 * chunk) + 2 * sizeof(int32_t) * M;
}

std::string format_bytes(uint64_t n) {
  char buf[48];
  if (n >= (uint64_t(1) << 30)) std::snprintf(buf, sizeof buf, "%.2f GiB", n / 1073741824.0);
  else if (n >= (uint64_t(1) << 20)) std::snprintf(buf, sizeof buf, "%.1f MiB", n / 1048576.0);
  else std::snprintf(buf, sizeof buf, "%llu bytes", static_cast<unsigned long long>(n));
  return buf;
}

}  // namespace lora
