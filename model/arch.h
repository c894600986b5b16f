// An architecture as data: the parts a decoder block is built from and every size derived
// from them, computed once here (torchtune's model builders; Megatron's TransformerConfig).
// The two families read side by side in gpt_spec and llama_spec (arch.cpp); the model, its
// parameter layout, the memory estimate, plan and bench all take their sizes from a spec.
#pragma once
#include <string>
#include <vector>

#include "model/config.h"
#include "model/ops/rope.h"

namespace lora {

enum class NormKind { LayerNorm, RMSNorm };        // LayerNorm has a bias; RMSNorm only a gain
enum class PositionKind { Learned, Rotary };       // a position table added to the embedding, or RoPE on q and k
enum class MlpKind { Gelu, SwiGlu };               // fc -> gelu -> proj, or down(silu(gate) * up)

struct ArchSpec {
  std::string family;  // "gpt" or "llama"
  NormKind norm = NormKind::LayerNorm;
  PositionKind position = PositionKind::Learned;
  MlpKind mlp = MlpKind::Gelu;

  int n_layer = 0, d_model = 0, vocab = 0, context = 0;
  int n_head = 0, n_kv_head = 0, head_dim = 0;  // query heads; KV heads (grouped-query attention); per-head width
  int ffn = 0;                                  // the MLP's inner width
  float norm_eps = 1e-5f;
  double rope_theta = 10000;
  RopeScaling rope_scaling;

  // Which tensors exist.
  bool norm_bias = true;                                 // LayerNorm's beta
  bool qkv_bias = true, o_bias = true, mlp_bias = true;  // the linear layers' biases
  bool tied_head = true;                                 // the LM head is the embedding table
  // Whether the family's checkpoints store q, k, v (and gate, up) as separate matrices, which
  // the model fuses (Llama), or q, k, v as one (GPT-2's c_attn). NF4 quantizes each stored
  // matrix on its own, as bitsandbytes does, so that a quantized folder loads as it is.
  bool separate_projections = false;

  // The LoRA targets this architecture has, in the order that numbers their random streams
  // (lora_stream): GPT's is {q, k, v, o, fc1, fc2}, as it has always been, so GPT runs and
  // checkpoints reproduce bit for bit.
  std::vector<int> lora_targets;

  int q_width() const { return n_head * head_dim; }       // q and the attention output
  int kv_width() const { return n_kv_head * head_dim; }   // k, and v
  int qkv_width() const { return q_width() + 2 * kv_width(); }
  int group() const { return n_head / n_kv_head; }        // query heads per KV head
  // Rows of the MLP's first (column-parallel) projection: fc, or gate and up fused.
  int mlp_up_width() const { return mlp == MlpKind::SwiGlu ? 2 * ffn : ffn; }
  bool has_target(int t) const;
};

// GPT-2 / GPT-3 (Radford et al. 2019; Brown et al. 2020): pre-LayerNorm blocks, learned
// positions, a 4·d GELU MLP, biases everywhere, the head tied to the embedding.
ArchSpec gpt_spec(const ModelConfig& m);
// The Llama family (Llama 2/3, Mistral, Qwen2): pre-RMSNorm blocks, rotary positions,
// grouped-query attention, a SwiGLU MLP, biases only where the config sets them, a tied or
// untied head.
ArchSpec llama_spec(const ModelConfig& m);
// The spec of m.arch; throws std::invalid_argument for another name.
ArchSpec arch_spec(const ModelConfig& m);

// One line for reports: "GPT L12 d768 H12 V50257", "Llama L126 d16384 H128/KV8 hd128 ffn53248
// V128256 untied".
std::string describe(const ArchSpec& a);

// Throws std::runtime_error naming the sizes when tensor parallelism over `tp` ranks cannot
// split the spec: the query heads, the KV heads (whole groups per rank), the MLP width.
void check_tp_split(const ArchSpec& a, int tp);
// The largest power of two tp that check_tp_split accepts (for messages and plan).
int largest_tp(const ArchSpec& a);

// A LoRA target's base weight in the full model: {out, in}; whether it is row-parallel (o,
// fc2, down) or column-parallel (the rest).
void lora_target_shape(const ArchSpec& a, int target, int* out, int* in);
bool is_row_parallel(int target);

// What a token multiplies by in a forward, for FLOP counts (bench, plan): the weights of the
// blocks' linear layers and the LM head (2 FLOPs each), and the attention's QK^T and PV over a
// window of seq_len positions (2 * 2 * seq_len * q_width per layer, the causal half not
// subtracted, as Megatron and the PaLM appendix count it).
double matmul_weights(const ArchSpec& a);
double attention_flops_per_token(const ArchSpec& a, int seq_len);
// The LoRA factors a token multiplies by: r (in + out) for each pair lora.targets enables, in
// every layer. `recomputed_only`: the pairs a recompute runs again, all but fc2's (down's).
double lora_weights(const ArchSpec& a, const LoraConfig& l, bool recomputed_only = false);

}  // namespace lora
