#include "io/hf_config.h"

#include <climits>
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

int positive_int(const nlohmann::json& j, const std::string& file, const char* key) {
  if (!j.contains(key)) throw InputError(file + ": no '" + key + "' (a GPT-2 config.json has it)");
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

}  // namespace

HfGpt2Shape read_hf_gpt2_config(const std::string& dir) {
  const std::string file = (std::filesystem::path(dir) / "config.json").string();
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
  if (j.contains("layer_norm_epsilon")) {
    const nlohmann::json& v = j["layer_norm_epsilon"];
    if (!v.is_number() || !(v.get<double>() > 0) || !(v.get<double>() < 1))
      throw InputError(file + ": layer_norm_epsilon must be a number in (0, 1) (got " + json_preview(v) + ")");
    s.layer_norm_epsilon = static_cast<float>(v.get<double>());
  }
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
  if (k == "d_model") return std::to_string(m.d_model);
  if (k == "vocab_size") return std::to_string(m.vocab_size);
  if (k == "context") return std::to_string(m.context);
  return format_eps(m.ln_eps);
}

std::string hf_shape_value(const HfGpt2Shape& s, const std::string& k) {
  ModelConfig m;
  apply_hf_shape(s, m);
  return model_shape_value(m, k);
}

void apply_hf_shape(const HfGpt2Shape& s, ModelConfig& m) {
  m.n_layer = s.n_layer;
  m.n_head = s.n_head;
  m.d_model = s.n_embd;
  m.vocab_size = s.vocab_size;
  m.context = s.n_positions;
  m.ln_eps = s.layer_norm_epsilon;
}

}  // namespace lora
