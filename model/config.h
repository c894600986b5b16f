// The model's own configuration: its shape and base weights (model:) and its LoRA pairs
// (lora:), as read from run.yaml. They live with the layer that uses them, so model/ and io/
// need no trainer header; trainer/config/run_config.h gathers them with the other sections.
#pragma once
#include <cstdint>
#include <string>

#include "model/ops/rope.h"

namespace lora {

struct ModelConfig {
  // Which block the model is built from (model/arch.h): "gpt" (GPT-2/GPT-3: LayerNorm, learned
  // positions, GELU MLP, tied head) or "llama" (the Llama family: RMSNorm, RoPE, SwiGLU MLP,
  // grouped-query attention). With init: hf the folder's config.json sets it.
  std::string arch = "gpt";
  int n_layer = 12;
  int n_head = 12;
  int d_model = 768;
  int vocab_size = 50257;
  int context = 1024;          // learned position table size; train.seq_len must fit
  float ln_eps = 1e-5f;          // the norm's epsilon (LayerNorm, or RMSNorm's rms_norm_eps)
  // The Llama family's keys (arch: llama); 0 means derived: n_kv_head = n_head,
  // head_dim = d_model / n_head, ffn = 4 * d_model (GPT's MLP width, the only one GPT has).
  int n_kv_head = 0;             // grouped-query attention: query head h reads KV head h / (n_head / n_kv_head)
  int head_dim = 0;
  int ffn = 0;                   // the MLP's inner width (Llama: intermediate_size)
  double rope_theta = 10000;
  RopeScaling rope_scaling;      // Llama 3.1's "llama3" frequency scaling; factor 0: none
  bool tie_embeddings = true;    // false: an lm_head of its own (Llama 3 8B and up, Mistral)
  bool qkv_bias = false;         // q, k, v biases (Qwen2; attention_bias); GPT always has its biases
  bool o_bias = false;           // o_proj bias (attention_bias)
  bool mlp_bias = false;         // gate/up/down biases (mlp_bias)
  std::string init = "seed";   // "seed": GPT-2 init from init_seed; "file": read weights_file;
                               // "hf": read the HF GPT-2 folder `path` (shape from its config.json)
  uint64_t init_seed = 1234;
  float init_std = 0.02f;      // GPT-2 / Megatron init_method_std; residual projections get
                               // init_std/sqrt(2*n_layer), positions init_std/2
  std::string weights_file;    // HDF5 base weights (io/base_weights.h), when init == "file"
  std::string path;            // HF model folder (io/hf_base_weights.h), when init == "hf"
  std::string dtype = "fp32";  // frozen matrices: "fp32" or "bf16" (model/dtype.h)
};

// Which linear layers carry a LoRA pair (DESIGN §4). q, k, v are separate pairs inside the
// fused QKV projection, gate and up inside the Llama MLP's fused gate|up projection. Each
// architecture has its own list of them (ArchSpec::lora_targets): GPT q k v o fc1 fc2, Llama
// q k v o gate up down.
enum LoraTarget : int { kQ = 0, kK, kV, kO, kFc1, kFc2, kGate, kUp, kDown, kNumTargets };
inline const char* lora_target_name(int t) {
  static const char* names[kNumTargets] = {"q", "k", "v", "o", "fc1", "fc2", "gate", "up", "down"};
  return names[t];
}
// -1 when `name` is none of them.
inline int lora_target_of(const std::string& name) {
  for (int t = 0; t < kNumTargets; ++t)
    if (name == lora_target_name(t)) return t;
  return -1;
}
// "q, k, v, o, fc1, fc2, gate, up, down", for messages.
std::string lora_target_names();

struct LoraConfig {
  bool enabled = true;          // false: full fine-tuning, every base weight trained (the paper's
                                // FT baseline); the other keys are then unused
  int r = 8;
  float alpha = 16.0f;
  bool rslora = false;          // scale alpha/sqrt(r) instead of alpha/r
  float dropout = 0.0f;         // on the input of A only
  bool targets[kNumTargets] = {true, false, true};  // the paper's q,v
  std::string init_from;        // a PEFT adapter folder (io/peft_adapter.h) the pairs start from
                                // instead of kaiming A / zero B; empty: none. A resumed
                                // checkpoint still wins: this is step 0's state only.
  float scale() const;          // alpha/r or alpha/sqrt(r)
  std::string target_list() const;  // "q,v": the enabled targets in layout order
};

}  // namespace lora
