// The shape of a Hugging Face GPT-2 model folder, from its config.json (the keys of
// transformers' GPT2Config). Only what the model computes is read; keys that would make
// the folder compute something else than lora_dist's GPT-2 (another activation, a
// non-default MLP width, per-layer attention scaling, untied embeddings) are refused.
#pragma once
#include <string>

#include "model/config.h"
#include "model/ops/rope.h"

namespace lora {

struct HfGpt2Shape {
  int n_layer = 0, n_head = 0, n_embd = 0, vocab_size = 0, n_positions = 0;
  float layer_norm_epsilon = 1e-5f;
};

// Reads DIR/config.json. Throws InputError naming the file and the key when it is missing,
// not JSON, lacks a shape key, holds a non-positive or non-integer size, n_embd % n_head != 0,
// or sets a key to a value lora_dist does not compute (model_type other than gpt2,
// activation_function other than gelu_new, n_inner other than null or 4 * n_embd,
// scale_attn_weights false, scale_attn_by_inverse_layer_idx true, tie_word_embeddings false).
HfGpt2Shape read_hf_gpt2_config(const std::string& dir);

// The model.* keys the shape fills, with their config.json names, for the YAML cross-check.
struct HfShapeKey {
  const char* yaml_key;  // "n_layer", "d_model", ...
  const char* json_key;  // "n_layer", "n_embd", ...
};
inline constexpr HfShapeKey kHfShapeKeys[] = {{"n_layer", "n_layer"},       {"n_head", "n_head"},
                                              {"d_model", "n_embd"},        {"vocab_size", "vocab_size"},
                                              {"context", "n_positions"},   {"ln_eps", "layer_norm_epsilon"}};
inline constexpr HfShapeKey kHfLlamaShapeKeys[] = {
    {"n_layer", "num_hidden_layers"},   {"n_head", "num_attention_heads"}, {"n_kv_head", "num_key_value_heads"},
    {"head_dim", "head_dim"},           {"d_model", "hidden_size"},        {"ffn", "intermediate_size"},
    {"vocab_size", "vocab_size"},       {"context", "max_position_embeddings"}, {"ln_eps", "rms_norm_eps"},
    {"rope_theta", "rope_theta"},       {"tie_embeddings", "tie_word_embeddings"}};

// The value of shape key `yaml_key` in `m`, as text for a message ("768", "1e-05", "true").
std::string model_shape_value(const ModelConfig& m, const std::string& yaml_key);
// Sets m's shape keys (and model.arch) from s.
void apply_hf_shape(const HfGpt2Shape& s, ModelConfig& m);

// The shape of a Hugging Face Llama-family folder (LlamaForCausalLM, MistralForCausalLM,
// Qwen2ForCausalLM), from its config.json: what the Llama block computes (RMSNorm, RoPE,
// SwiGLU, grouped-query attention). Defaults are transformers' where a key is absent.
struct HfLlamaShape {
  std::string model_type;  // llama | mistral | qwen2
  int n_layer = 0, d_model = 0, n_head = 0, n_kv_head = 0, head_dim = 0, ffn = 0, vocab_size = 0, context = 0;
  float rms_norm_eps = 1e-6f;
  double rope_theta = 10000;
  RopeScaling rope_scaling;  // factor 0: plain RoPE
  bool tie_word_embeddings = false;
  bool qkv_bias = false, o_bias = false, mlp_bias = false;  // Qwen2: q, k, v biases (hard-coded there)
  int sliding_window = 0;  // Mistral's attention window; 0: none (full causal attention)
};

// Reads DIR/config.json of a Llama-family folder. Throws InputError naming the file and the
// key: a missing or malformed shape key, num_key_value_heads not dividing num_attention_heads,
// hidden_size not divisible by num_attention_heads where head_dim is absent, an activation
// other than silu, a rope type other than default/llama3 (accepted in `rope_scaling` with
// `rope_type` or `type`, and in transformers v5's `rope_parameters`), llama3 scaling missing a
// field or with low_freq_factor >= high_freq_factor, attention dropout, Qwen2's sliding
// window, Qwen3 (its per-head q_norm/k_norm are not built), or another model_type.
HfLlamaShape read_hf_llama_config(const std::string& dir);
void apply_hf_shape(const HfLlamaShape& s, ModelConfig& m);

// DIR/config.json's model_type ("gpt2", "llama", ...), or "" when it has none (a GPT-2
// folder may omit it). Throws InputError when the file is missing or not a JSON object.
std::string read_hf_model_type(const std::string& dir);

}  // namespace lora
