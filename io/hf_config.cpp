#include "io/hf_config.h"

#include <climits>
#include <cmath>
#include <limits>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "io/input_error.h"
#include "io/json_preview.h"

namespace lora {

namespace {

constexpr uintmax_t kMaxConfigJsonBytes = 1 << 20;  // a config.json is a few KiB

int positive_int(const nlohmann::json& j, const std::string& file, const char* key, const char* model = "GPT-2") {
  if (!j.contains(key)) throw InputError(file + ": no '" + key + "' (a " + model + " config.json has it)");
  const nlohmann::json& v = j[key];
  if (!v.is_number_integer() || v.get<long long>() < 1 || v.get<long long>() > INT_MAX)
    throw InputError(file + ": " + key + " must be a positive 32-bit integer (got " + json_preview(v) + ")");
  return v.get<int>();
}

// `key`, when present and not null, must be `expected`; otherwise the folder computes
// something this model does not.
void require(const nlohmann::json& j, const std::string& file, const char* key, const nlohmann::json& expected,
             const std::string& why) {
  if (!j.contains(key) || j[key].is_null() || j[key] == expected) return;
  throw InputError(file + ": " + key + " is " + json_preview(j[key]) + "; lora_dist computes " + json_preview(expected) + " (" + why + ")");
}

std::string format_eps(float v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

// DIR/config.json as a JSON object; `file` is set to its path.
nlohmann::json read_config_json(const std::string& dir, std::string& file) {
  file = (std::filesystem::path(dir) / "config.json").string();
  std::error_code ec;
  if (!std::filesystem::is_regular_file(file, ec)) throw InputError(file + ": not found (an HF model folder has one)");
  if (std::filesystem::file_size(file, ec) > kMaxConfigJsonBytes)
    throw InputError(file + ": larger than any config.json (limit " + std::to_string(kMaxConfigJsonBytes) + " bytes)");
  std::ifstream in(file, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text.str());
  } catch (const nlohmann::json::exception& e) {
    throw InputError(file + ": not valid JSON: " + e.what());
  }
  if (!j.is_object()) throw InputError(file + ": expected a JSON object (got " + json_preview(j) + ")");
  return j;
}

constexpr double kNoLimit = std::numeric_limits<double>::infinity();

// A number in (lo, hi) under `key` of `j`, or `fallback` where the key is absent (null is refused).
double number_in(const nlohmann::json& j, const std::string& file, const std::string& key, double lo, double hi,
                 double fallback) {
  if (!j.contains(key)) return fallback;
  const nlohmann::json& v = j[key];
  if (!v.is_number() || !(v.get<double>() > lo) || !(v.get<double>() < hi))
    throw InputError(file + ": " + key + " must be a number in (" + format_eps(float(lo)) + ", " +
                     (std::isinf(hi) ? std::string("inf") : format_eps(float(hi))) + ") (got " + json_preview(v) + ")");
  return v.get<double>();
}

bool boolean(const nlohmann::json& j, const std::string& file, const char* key, bool fallback) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  if (!j[key].is_boolean()) throw InputError(file + ": " + key + " must be true or false (got " + json_preview(j[key]) + ")");
  return j[key].get<bool>();
}

}  // namespace

HfGpt2Shape read_hf_gpt2_config(const std::string& dir) {
  std::string file;
  const nlohmann::json j = read_config_json(dir, file);
  require(j, file, "model_type", "gpt2", "the GPT-2 architecture");
  require(j, file, "activation_function", "gelu_new", "the tanh-approximated GELU of GPT-2");
  require(j, file, "scale_attn_weights", true, "attention scores divided by sqrt(head size)");
  require(j, file, "scale_attn_by_inverse_layer_idx", false, "no per-layer attention scaling");
  require(j, file, "tie_word_embeddings", true, "the LM head is the token embedding");
  require(j, file, "add_cross_attention", false, "a decoder without cross-attention");

  HfGpt2Shape s;
  s.n_layer = positive_int(j, file, "n_layer");
  s.n_head = positive_int(j, file, "n_head");
  s.n_embd = positive_int(j, file, "n_embd");
  s.vocab_size = positive_int(j, file, "vocab_size");
  s.n_positions = positive_int(j, file, j.contains("n_positions") || !j.contains("n_ctx") ? "n_positions" : "n_ctx");
  s.layer_norm_epsilon = static_cast<float>(number_in(j, file, "layer_norm_epsilon", 0, 1, s.layer_norm_epsilon));
  if (s.n_embd % s.n_head != 0)
    throw InputError(file + ": n_embd " + std::to_string(s.n_embd) + " is not divisible by n_head " +
                     std::to_string(s.n_head));
  if (4LL * s.n_embd > INT_MAX) throw InputError(file + ": n_embd " + std::to_string(s.n_embd) + " is too large (4 * n_embd must fit 32 bits)");
  require(j, file, "n_inner", 4 * s.n_embd, "an MLP of width 4 * n_embd");
  return s;
}

std::string model_shape_value(const ModelConfig& m, const std::string& k) {
  if (k == "n_layer") return std::to_string(m.n_layer);
  if (k == "n_head") return std::to_string(m.n_head);
  if (k == "n_kv_head") return std::to_string(m.n_kv_head);
  if (k == "head_dim") return std::to_string(m.head_dim);
  if (k == "d_model") return std::to_string(m.d_model);
  if (k == "ffn") return std::to_string(m.ffn);
  if (k == "vocab_size") return std::to_string(m.vocab_size);
  if (k == "context") return std::to_string(m.context);
  if (k == "rope_theta") return format_eps(float(m.rope_theta));
  if (k == "tie_embeddings") return m.tie_embeddings ? "true" : "false";
  return format_eps(m.ln_eps);
}

void apply_hf_shape(const HfGpt2Shape& s, ModelConfig& m) {
  m.arch = "gpt";
  m.n_layer = s.n_layer;
  m.n_head = s.n_head;
  m.d_model = s.n_embd;
  m.vocab_size = s.vocab_size;
  m.context = s.n_positions;
  m.ln_eps = s.layer_norm_epsilon;
}

std::string read_hf_model_type(const std::string& dir) {
  std::string file;
  const nlohmann::json j = read_config_json(dir, file);
  if (!j.contains("model_type")) return "";
  if (!j["model_type"].is_string()) throw InputError(file + ": model_type must be a string (got " + json_preview(j["model_type"]) + ")");
  return j["model_type"].get<std::string>();
}

void apply_hf_shape(const HfLlamaShape& s, ModelConfig& m) {
  m.arch = "llama";
  m.n_layer = s.n_layer;
  m.d_model = s.d_model;
  m.n_head = s.n_head;
  m.n_kv_head = s.n_kv_head;
  m.head_dim = s.head_dim;
  m.ffn = s.ffn;
  m.vocab_size = s.vocab_size;
  m.context = s.context;
  m.ln_eps = s.rms_norm_eps;
  m.rope_theta = s.rope_theta;
  m.rope_scaling = s.rope_scaling;
  m.tie_embeddings = s.tie_word_embeddings;
  m.qkv_bias = s.qkv_bias;
  m.o_bias = s.o_bias;
  m.mlp_bias = s.mlp_bias;
}

HfLlamaShape read_hf_llama_config(const std::string& dir) {
  std::string file;
  const nlohmann::json j = read_config_json(dir, file);
  HfLlamaShape s;
  if (!j.contains("model_type") || !j["model_type"].is_string())
    throw InputError(file + ": no 'model_type' string (llama, mistral or qwen2)");
  s.model_type = j["model_type"].get<std::string>();
  if (s.model_type == "qwen3")
    throw InputError(file + ": model_type qwen3: its per-head q_norm/k_norm are not built yet; llama, mistral and "
                            "qwen2 folders are read");
  if (s.model_type != "llama" && s.model_type != "mistral" && s.model_type != "qwen2")
    throw InputError(file + ": model_type " + json_preview(j["model_type"]) + " is not a Llama-family model "
                            "(llama, mistral, qwen2)");
  require(j, file, "hidden_act", "silu", "SwiGLU: silu(gate) * up");
  require(j, file, "attention_dropout", 0.0, "no dropout on the attention probabilities");
  require(j, file, "use_sliding_window", false, "full causal attention");

  const auto shape = [&](const char* key) { return positive_int(j, file, key, "Llama-family"); };
  s.n_layer = shape("num_hidden_layers");
  s.d_model = shape("hidden_size");
  s.n_head = shape("num_attention_heads");
  s.n_kv_head = j.contains("num_key_value_heads") && !j["num_key_value_heads"].is_null() ? shape("num_key_value_heads")
                                                                                       : s.n_head;
  s.ffn = shape("intermediate_size");
  s.vocab_size = shape("vocab_size");
  s.context = shape("max_position_embeddings");
  if (s.n_head % s.n_kv_head != 0)
    throw InputError(file + ": num_key_value_heads " + std::to_string(s.n_kv_head) + " does not divide " +
                     "num_attention_heads " + std::to_string(s.n_head) + " (grouped-query attention needs whole groups)");
  if (j.contains("head_dim") && !j["head_dim"].is_null()) {
    s.head_dim = shape("head_dim");
  } else {
    if (s.d_model % s.n_head != 0)
      throw InputError(file + ": hidden_size " + std::to_string(s.d_model) + " is not divisible by " +
                       "num_attention_heads " + std::to_string(s.n_head) + " and there is no head_dim");
    s.head_dim = s.d_model / s.n_head;
  }
  if (s.head_dim % 2 != 0) throw InputError(file + ": head_dim " + std::to_string(s.head_dim) + " is odd (RoPE rotates pairs)");
  s.rms_norm_eps = static_cast<float>(number_in(j, file, "rms_norm_eps", 0, 1, 1e-6));
  s.tie_word_embeddings = boolean(j, file, "tie_word_embeddings", false);
  const bool attention_bias = boolean(j, file, "attention_bias", false);
  s.mlp_bias = boolean(j, file, "mlp_bias", false);
  if (s.model_type == "qwen2") {  // hard-coded in transformers' Qwen2Attention, not in config.json
    s.qkv_bias = true;
    s.o_bias = false;
  } else {
    s.qkv_bias = s.o_bias = attention_bias;
  }
  if (s.model_type == "mistral" && j.contains("sliding_window") && !j["sliding_window"].is_null())
    s.sliding_window = shape("sliding_window");

  // RoPE: rope_theta and rope_scaling (transformers 4.x), or rope_parameters (v5, rope_theta inside).
  const bool v5 = j.contains("rope_parameters") && !j["rope_parameters"].is_null();
  const char* scaling_key = v5 ? "rope_parameters" : "rope_scaling";
  s.rope_theta = number_in(v5 ? j["rope_parameters"] : j, file + (v5 ? ": rope_parameters" : ""), "rope_theta", 0,
                           kNoLimit, 10000);
  if (j.contains(scaling_key) && !j[scaling_key].is_null()) {
    const nlohmann::json& r = j[scaling_key];
    const std::string where = file + ": " + scaling_key;
    if (!r.is_object()) throw InputError(where + " must be an object (got " + json_preview(r) + ")");
    const char* type_key = r.contains("rope_type") ? "rope_type" : "type";
    const std::string type = r.contains(type_key) && r[type_key].is_string() ? r[type_key].get<std::string>() : "";
    if (type == "llama3") {
      const auto field = [&](const char* key) {
        if (!r.contains(key) || r[key].is_null()) throw InputError(where + ": no '" + key + "' (llama3 scaling needs it)");
        return number_in(r, where, key, 0, kNoLimit, 0);
      };
      s.rope_scaling.factor = field("factor");
      s.rope_scaling.low_freq_factor = field("low_freq_factor");
      s.rope_scaling.high_freq_factor = field("high_freq_factor");
      s.rope_scaling.original_max_position_embeddings = field("original_max_position_embeddings");
      if (!(s.rope_scaling.low_freq_factor < s.rope_scaling.high_freq_factor))
        throw InputError(where + ": low_freq_factor must be below high_freq_factor (got " +
                         format_eps(float(s.rope_scaling.low_freq_factor)) + " and " +
                         format_eps(float(s.rope_scaling.high_freq_factor)) + ")");
    } else if (type != "default") {
      throw InputError(where + ": " + type_key + " " + (r.contains(type_key) ? json_preview(r[type_key]) : "missing") +
                       " is not computed (plain RoPE, \"default\", and Llama 3.1's \"llama3\" are)");
    }
  }
  return s;
}

}  // namespace lora
