#include "io/peft_adapter.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <stdexcept>

#include "io/atomic_folder.h"
#include "io/input_error.h"
#include "io/json_preview.h"
#include "io/safetensors_file.h"
#include "io/safetensors_writer.h"

namespace lora {

namespace {

namespace fs = std::filesystem;
// ordered: the config is written in a readable order, and read in the file's order, which is
// the order PEFT tries rank_pattern / alpha_pattern keys in.
using json = nlohmann::ordered_json;

constexpr const char* kConfig = "adapter_config.json";
constexpr const char* kWeights = "adapter_model.safetensors";
constexpr int kQkv[3] = {kQ, kK, kV};

// GPT-2's module (under transformer.h.N.) that target t lives in.
const char* module_of(int t) {
  switch (t) {
    case kO: return "attn.c_proj";
    case kFc1: return "mlp.c_fc";
    case kFc2: return "mlp.c_proj";
    default: return "attn.c_attn";
  }
}
// Its target_modules entry: PEFT matches a list entry as a suffix after a '.', and "c_proj"
// alone would also pick the other c_proj.
const char* target_entry(int t) { return t <= kV ? "c_attn" : module_of(t); }

std::string tensor_key(int layer, const char* module, char factor) {
  return "base_model.model.transformer.h." + std::to_string(layer) + "." + module + ".lora_" + factor + ".weight";
}

int qkv_targets(const LoraConfig& lc) { return lc.targets[kQ] + lc.targets[kK] + lc.targets[kV]; }

// A whole number as a JSON integer (PEFT's config types r and lora_alpha as int), else a double.
json number(double v) { return v == std::floor(v) && std::fabs(v) < 1e15 ? json(static_cast<int64_t>(v)) : json(v); }

// The alpha of c_attn with n of q, k, v stacked: alpha_c / (n r) = alpha / r, or with rslora
// alpha_c / sqrt(n r) = alpha / sqrt(r).
double fused_alpha(const LoraConfig& lc, int n) { return lc.rslora ? lc.alpha * std::sqrt(double(n)) : double(lc.alpha) * n; }

// The Llama family's module (under model.layers.N.) of target t: one nn.Linear per target.
const char* llama_module_of(int t) {
  switch (t) {
    case kQ: return "self_attn.q_proj";
    case kK: return "self_attn.k_proj";
    case kV: return "self_attn.v_proj";
    case kO: return "self_attn.o_proj";
    case kGate: return "mlp.gate_proj";
    case kUp: return "mlp.up_proj";
    default: return "mlp.down_proj";
  }
}
// Its target_modules entry ("q_proj"): unique as a suffix.
std::string llama_entry(int t) {
  const std::string m = llama_module_of(t);
  return m.substr(m.find('.') + 1);
}
std::string llama_key(int layer, int t, char factor) {
  return "base_model.model.model.layers." + std::to_string(layer) + "." + llama_module_of(t) + ".lora_" + factor + ".weight";
}

json config_json(const LoraConfig& lc, const std::string& base_model, const ArchSpec& a) {
  const bool gpt = a.family == "gpt";
  json targets = json::array();
  json rank_pattern = json::object(), alpha_pattern = json::object();
  if (gpt) {
    // Entries in a fixed order, c_attn once.
    if (qkv_targets(lc)) targets.push_back("c_attn");
    for (int t : {kO, kFc1, kFc2})
      if (lc.targets[t]) targets.push_back(target_entry(t));
    const int n = qkv_targets(lc);
    if (n > 1) {  // the same key in both: PEFT looks the module up once for the pair
      rank_pattern["c_attn"] = n * lc.r;
      alpha_pattern["c_attn"] = number(fused_alpha(lc, n));
    }
  } else {
    for (const int t : a.lora_targets)
      if (lc.targets[t]) targets.push_back(llama_entry(t));
  }
  // Only keys PEFT 0.7's LoraConfig accepts: older releases refuse an unknown key.
  return json{{"peft_type", "LORA"},
              {"task_type", "CAUSAL_LM"},
              {"base_model_name_or_path", base_model.empty() ? json(nullptr) : json(base_model)},
              {"revision", nullptr},
              {"inference_mode", true},
              {"r", lc.r},
              {"lora_alpha", number(lc.alpha)},
              {"lora_dropout", std::round(double(lc.dropout) * 1e6) / 1e6},  // 0.05, not float's 0.0500000007
              {"target_modules", targets},
              {"fan_in_fan_out", gpt},  // GPT-2's Conv1D stores [in, out]; Llama's nn.Linear [out, in]
              {"bias", "none"},
              {"use_rslora", lc.rslora},
              {"modules_to_save", nullptr},
              {"init_lora_weights", true},
              {"layers_to_transform", nullptr},
              {"layers_pattern", nullptr},
              {"rank_pattern", rank_pattern},
              {"alpha_pattern", alpha_pattern}};
}

const float* tensor_of(const LoraLayout& layout, const std::vector<float>& params, const std::string& name) {
  return params.data() + layout.at(name).offset;
}

}  // namespace

namespace {

// GPT-2's tensors: c_attn fused (see the header), the others one pair each.
std::vector<StWriteTensor> gpt2_tensors(const LoraConfig& lc, const ArchSpec& arch, const LoraLayout& layout,
                                        const std::vector<float>& params) {
  std::vector<StWriteTensor> tensors;
  const int d = arch.d_model, r = lc.r, n = qkv_targets(lc);
  for (int l = 0; l < arch.n_layer; ++l) {
    if (n > 0) {  // fused c_attn: A [n r, d] stacked, B [3d, n r] block-structured
      StWriteTensor A{tensor_key(l, "attn.c_attn", 'A'), {uint64_t(n) * r, uint64_t(d)}, {}};
      StWriteTensor B{tensor_key(l, "attn.c_attn", 'B'), {3 * uint64_t(d), uint64_t(n) * r}, {}};
      B.data.assign(size_t(3) * d * n * r, 0.0f);
      int slot = 0;
      for (int j = 0; j < 3; ++j) {
        const int t = kQkv[j];
        if (!lc.targets[t]) continue;
        const float* a = tensor_of(layout, params, lora_pair_name(l, t) + "A");  // [r, d]
        const float* b = tensor_of(layout, params, lora_pair_name(l, t) + "B");  // [d, r]
        A.data.insert(A.data.end(), a, a + size_t(r) * d);
        for (int row = 0; row < d; ++row)
          for (int k = 0; k < r; ++k) B.data[(size_t(j) * d + row) * n * r + size_t(slot) * r + k] = b[size_t(row) * r + k];
        ++slot;
      }
      tensors.push_back(std::move(A));
      tensors.push_back(std::move(B));
    }
    for (int t : {kO, kFc1, kFc2}) {
      if (!lc.targets[t]) continue;
      int o = 0, in = 0;
      lora_target_shape(arch, t, &o, &in);
      const float* a = tensor_of(layout, params, lora_pair_name(l, t) + "A");
      const float* b = tensor_of(layout, params, lora_pair_name(l, t) + "B");
      tensors.push_back({tensor_key(l, module_of(t), 'A'), {uint64_t(r), uint64_t(in)}, {a, a + size_t(r) * in}});
      tensors.push_back({tensor_key(l, module_of(t), 'B'), {uint64_t(o), uint64_t(r)}, {b, b + size_t(o) * r}});
    }
  }
  return tensors;
}

// The Llama family's: each target its own nn.Linear, A [r, in] and B [out, r] as lora_dist's.
std::vector<StWriteTensor> llama_tensors(const LoraConfig& lc, const ArchSpec& a, const LoraLayout& layout,
                                         const std::vector<float>& params) {
  std::vector<StWriteTensor> tensors;
  for (int l = 0; l < a.n_layer; ++l)
    for (const int t : a.lora_targets) {
      if (!lc.targets[t]) continue;
      int o = 0, in = 0;
      lora_target_shape(a, t, &o, &in);
      const float* A = tensor_of(layout, params, lora_pair_name(l, t) + "A");
      const float* B = tensor_of(layout, params, lora_pair_name(l, t) + "B");
      tensors.push_back({llama_key(l, t, 'A'), {uint64_t(lc.r), uint64_t(in)}, {A, A + size_t(lc.r) * in}});
      tensors.push_back({llama_key(l, t, 'B'), {uint64_t(o), uint64_t(lc.r)}, {B, B + size_t(o) * lc.r}});
    }
  return tensors;
}

}  // namespace

void write_peft_adapter(const std::string& dir, const LoraConfig& lc, const ModelConfig& m, const LoraLayout& layout,
                        const std::vector<float>& params, const std::string& base_model) {
  const ArchSpec a = arch_spec(m);
  write_folder_atomically(dir, "the adapter", [&](const fs::path& tmp) {
    const std::vector<StWriteTensor> tensors =
        a.family == "gpt" ? gpt2_tensors(lc, a, layout, params) : llama_tensors(lc, a, layout, params);
    write_safetensors((tmp / kWeights).string(), tensors);
    std::ofstream f(tmp / kConfig);
    f << config_json(lc, base_model, a).dump(2) << "\n";
    f.close();
    if (!f) throw std::runtime_error((tmp / kConfig).string() + ": write failed");
  });
}

namespace {

// PEFT's lookup of a module's r and lora_alpha: the first key of rank_pattern, then of
// alpha_pattern, that matches ".*\.KEY$" against the module's name, then that key in each
// pattern, else the global value.
void module_rank_alpha(const json& cfg, const std::string& module_name, const std::string& file, int* r, double* alpha) {
  *r = cfg["r"].get<int>();
  *alpha = cfg["lora_alpha"].get<double>();
  std::string key;
  for (const char* pattern : {"rank_pattern", "alpha_pattern"}) {
    if (!cfg.contains(pattern) || cfg[pattern].is_null()) continue;
    if (!cfg[pattern].is_object()) throw InputError(file + ": " + pattern + " must be an object");
    for (const auto& [k, v] : cfg[pattern].items()) {
      (void)v;
      if (!key.empty()) break;
      try {
        if (std::regex_match(module_name, std::regex(".*\\." + k))) key = k;
      } catch (const std::regex_error&) {
        throw InputError(file + ": " + pattern + " key '" + k + "' is not a regular expression");
      }
    }
  }
  if (key.empty()) return;
  if (cfg.contains("rank_pattern") && cfg["rank_pattern"].is_object() && cfg["rank_pattern"].contains(key)) {
    if (!cfg["rank_pattern"][key].is_number_integer())
      throw InputError(file + ": rank_pattern['" + key + "'] must be an integer");
    *r = cfg["rank_pattern"][key].get<int>();
  }
  if (cfg.contains("alpha_pattern") && cfg["alpha_pattern"].is_object() && cfg["alpha_pattern"].contains(key)) {
    if (!cfg["alpha_pattern"][key].is_number())
      throw InputError(file + ": alpha_pattern['" + key + "'] must be a number");
    *alpha = cfg["alpha_pattern"][key].get<double>();
  }
}

json read_config(const std::string& file, bool fan_in_fan_out) {
  std::ifstream f(file);
  if (!f) throw InputError(file + ": cannot open: " + std::strerror(errno));
  json cfg;
  try {
    cfg = json::parse(f);
  } catch (const json::exception& e) {
    throw InputError(file + ": not valid JSON: " + e.what());
  }
  if (!cfg.is_object()) throw InputError(file + ": not a JSON object");
  auto need = [&](const char* key, bool ok, const char* what) {
    if (!cfg.contains(key) || !ok) throw InputError(file + ": '" + key + "' must be " + what);
  };
  need("peft_type", cfg.contains("peft_type") && cfg["peft_type"] == "LORA", "\"LORA\"");
  need("r", cfg.contains("r") && cfg["r"].is_number_integer() && cfg["r"].get<int64_t>() > 0, "an integer > 0");
  need("lora_alpha", cfg.contains("lora_alpha") && cfg["lora_alpha"].is_number(), "a number");
  if (fan_in_fan_out)
    need("fan_in_fan_out", cfg.contains("fan_in_fan_out") && cfg["fan_in_fan_out"] == true,
         "true for a GPT-2 adapter (its Conv1D layers store [in, out])");
  else if (cfg.contains("fan_in_fan_out") && cfg["fan_in_fan_out"] != false)
    throw InputError(file + ": 'fan_in_fan_out' must be false for a Llama-family adapter (nn.Linear stores [out, in])");
  need("target_modules", cfg.contains("target_modules") && cfg["target_modules"].is_array(), "a list of module names");
  if (cfg.contains("bias") && cfg["bias"] != "none")
    throw InputError(file + ": bias " + json_preview(cfg["bias"]) + ": lora_dist trains no biases (\"none\" only)");
  return cfg;
}

// The tensor `key` of shape [rows, cols] as float: F32 as stored, F16 and BF16 (adapters PEFT
// saved from a half-precision model) widened exactly.
std::vector<float> find_tensor(const SafetensorsFile& st, const std::string& key, uint64_t rows, uint64_t cols) {
  const SafetensorsTensor* t = st.find(key);
  if (!t) throw InputError(st.path() + ": no tensor '" + key + "'");
  if (t->dtype != StDtype::F32 && t->dtype != StDtype::F16 && t->dtype != StDtype::BF16)
    throw InputError(st.path() + ": tensor '" + key + "' is " + st_dtype_name(t->dtype) +
                     "; a LoRA factor must be F32, F16 or BF16");
  if (t->shape != std::vector<uint64_t>{rows, cols})
    throw InputError(st.path() + ": tensor '" + key + "' has shape " + t->shape_str() + ", expected [" +
                     std::to_string(rows) + ", " + std::to_string(cols) + "]");
  std::vector<float> v(rows * cols);
  for (uint64_t k = 0; k < v.size(); ++k) v[k] = st_element(*t, k);
  return v;
}

}  // namespace

namespace {

// A Llama-family adapter: target_modules the run's targets (by the module's last name, or its
// whole path), each module's scale the run's, and every pair's A [r, in] and B [out, r].
void read_llama_adapter(const std::string& dir, const LoraConfig& lc, const ArchSpec& a, const LoraLayout& layout,
                        std::vector<float>& params) {
  const std::string cfg_file = (fs::path(dir) / kConfig).string();
  const json cfg = read_config(cfg_file, false);
  const bool rslora = cfg.contains("use_rslora") && cfg["use_rslora"] == true;
  if (rslora != lc.rslora)
    throw InputError(cfg_file + ": use_rslora is " + (rslora ? "true" : "false") + ", this run's lora.rslora " +
                     (lc.rslora ? "true" : "false"));
  std::vector<std::string> want, got;
  for (const int t : a.lora_targets)
    if (lc.targets[t]) want.push_back(llama_entry(t));
  for (const auto& e : cfg["target_modules"]) {
    if (!e.is_string()) throw InputError(cfg_file + ": target_modules holds " + json_preview(e) + ", not a name");
    const std::string s = e.get<std::string>(), last = s.substr(s.rfind('.') + 1);
    if (std::find_if(a.lora_targets.begin(), a.lora_targets.end(), [&](int t) { return llama_entry(t) == last; }) ==
        a.lora_targets.end())
      throw InputError(cfg_file + ": target_modules entry '" + s + "' is not one of the Llama linear layers lora_dist "
                       "trains (q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj)");
    got.push_back(last);
  }
  std::sort(got.begin(), got.end());
  std::sort(want.begin(), want.end());
  if (got != want)
    throw InputError(cfg_file + ": target_modules do not fit lora.targets " + lc.target_list());
  const SafetensorsFile st((fs::path(dir) / kWeights).string());
  params.assign(layout.total, 0.0f);
  for (const int t : a.lora_targets) {
    if (!lc.targets[t]) continue;
    int R = 0;
    double alpha = 0;
    module_rank_alpha(cfg, std::string("model.layers.0.") + llama_module_of(t), cfg_file, &R, &alpha);
    const double s = rslora ? alpha / std::sqrt(double(R)) : alpha / R;
    if (R != lc.r)
      throw InputError(cfg_file + ": " + llama_entry(t) + " has rank " + std::to_string(R) + ", this run's lora.r is " +
                       std::to_string(lc.r));
    if (std::fabs(s - lc.scale()) > 1e-6 * std::fabs(lc.scale()))
      throw InputError(cfg_file + ": " + llama_entry(t) + ": scale " + std::to_string(s) + " (lora_alpha " +
                       std::to_string(alpha) + ", r " + std::to_string(R) + ") differs from this run's " +
                       std::to_string(lc.scale()));
    int o = 0, in = 0;
    lora_target_shape(a, t, &o, &in);
    for (int l = 0; l < a.n_layer; ++l) {
      const std::vector<float> A = find_tensor(st, llama_key(l, t, 'A'), uint64_t(R), uint64_t(in));
      const std::vector<float> B = find_tensor(st, llama_key(l, t, 'B'), uint64_t(o), uint64_t(R));
      std::copy(A.begin(), A.end(), params.data() + layout.at(lora_pair_name(l, t) + "A").offset);
      std::copy(B.begin(), B.end(), params.data() + layout.at(lora_pair_name(l, t) + "B").offset);
    }
  }
  for (const TensorSpec& s : layout.tensors) check_finite(params.data() + s.offset, s.local_size(), st.path(), s.name);
}

}  // namespace

void read_peft_adapter(const std::string& dir, const LoraConfig& lc, const ModelConfig& m, const LoraLayout& layout,
                       std::vector<float>& params) {
  const ArchSpec arch = arch_spec(m);
  if (arch.family != "gpt") return read_llama_adapter(dir, lc, arch, layout, params);
  const std::string cfg_file = (fs::path(dir) / kConfig).string();
  const json cfg = read_config(cfg_file, true);
  const bool rslora = cfg.contains("use_rslora") && cfg["use_rslora"] == true;
  if (rslora != lc.rslora)
    throw InputError(cfg_file + ": use_rslora is " + (rslora ? "true" : "false") + ", this run's lora.rslora " +
                     (lc.rslora ? "true" : "false"));
  // The modules the adapter targets must be exactly the run's.
  std::vector<std::string> want;
  if (qkv_targets(lc)) want.push_back("c_attn");
  for (int t : {kO, kFc1, kFc2})
    if (lc.targets[t]) want.push_back(target_entry(t));
  std::vector<std::string> got;
  for (const auto& e : cfg["target_modules"]) {
    if (!e.is_string()) throw InputError(cfg_file + ": target_modules holds " + json_preview(e) + ", not a name");
    std::string s = e.get<std::string>();
    if (s == "mlp.c_proj" || s == "attn.c_proj" || s == "c_attn" || s == "mlp.c_fc") got.push_back(s);
    else if (s == "attn.c_attn") got.push_back("c_attn");
    else if (s == "c_fc") got.push_back("mlp.c_fc");
    else throw InputError(cfg_file + ": target_modules entry '" + s + "' does not name one GPT-2 layer lora_dist can train");
  }
  std::sort(got.begin(), got.end());
  std::vector<std::string> sorted_want = want;
  std::sort(sorted_want.begin(), sorted_want.end());
  if (got != sorted_want) {
    std::string names;  // known names only (checked above), so short
    for (size_t i = 0; i < got.size() && i < 8; ++i) names += (i ? ", " : "") + got[i];
    throw InputError(cfg_file + ": target_modules [" + names + (got.size() > 8 ? ", ..." : "") +
                     "] do not fit lora.targets " + lc.target_list());
  }

  const SafetensorsFile st((fs::path(dir) / kWeights).string());
  params.assign(layout.total, 0.0f);
  const int d = m.d_model, r = lc.r, n = qkv_targets(lc);
  auto scale_of = [&](const char* module, int* mr) {
    double alpha = 0;
    module_rank_alpha(cfg, std::string("transformer.h.0.") + module, cfg_file, mr, &alpha);
    const double s = rslora ? alpha / std::sqrt(double(*mr)) : alpha / *mr;
    if (std::fabs(s - lc.scale()) > 1e-6 * std::fabs(lc.scale()))
      throw InputError(cfg_file + ": " + module + ": scale " + std::to_string(s) + " (lora_alpha " + std::to_string(alpha) +
                       ", r " + std::to_string(*mr) + ") differs from this run's " + std::to_string(lc.scale()));
  };
  for (int l = 0; l < m.n_layer; ++l) {
    if (n > 0) {
      int R = 0;
      scale_of("attn.c_attn", &R);
      // Stacked (lora_dist's export, R = n r) or one A shared by q, k, v (PEFT's own, R = r).
      const bool stacked = R == n * r;
      if (!stacked && R != r)
        throw InputError(cfg_file + ": attn.c_attn has rank " + std::to_string(R) + "; this run needs " +
                         std::to_string(r) + " or " + std::to_string(n * r) + " (q, k, v stacked)");
      const std::vector<float> Av = find_tensor(st, tensor_key(l, "attn.c_attn", 'A'), R, d);
      const std::vector<float> Bv = find_tensor(st, tensor_key(l, "attn.c_attn", 'B'), 3 * uint64_t(d), R);
      const float *A = Av.data(), *B = Bv.data();
      int slot = 0;
      for (int j = 0; j < 3; ++j) {
        const int t = kQkv[j];
        const int first = stacked && lc.targets[t] ? slot * r : -1;  // this block's columns
        for (int row = 0; row < d; ++row)
          for (int c = 0; c < R; ++c) {
            const float b = B[(size_t(j) * d + row) * R + c];
            const bool mine = lc.targets[t] && (!stacked || (c >= first && c < first + r));
            if (!mine && b != 0.0f)
              throw InputError(st.path() + ": tensor '" + tensor_key(l, "attn.c_attn", 'B') + "': element [" +
                               std::to_string(j * d + row) + ", " + std::to_string(c) + "] is " + std::to_string(b) +
                               "; with lora.targets " + lc.target_list() + " it must be 0 (it does not fit the targets)");
          }
        if (!lc.targets[t]) continue;
        float* a = params.data() + layout.at(lora_pair_name(l, t) + "A").offset;
        float* b = params.data() + layout.at(lora_pair_name(l, t) + "B").offset;
        const int c0 = stacked ? first : 0;
        std::copy(A + size_t(c0) * d, A + size_t(c0 + r) * d, a);
        for (int row = 0; row < d; ++row)
          for (int k = 0; k < r; ++k) b[size_t(row) * r + k] = B[(size_t(j) * d + row) * R + c0 + k];
        ++slot;
      }
    }
    for (int t : {kO, kFc1, kFc2}) {
      if (!lc.targets[t]) continue;
      int R = 0, o = 0, in = 0;
      scale_of(module_of(t), &R);
      if (R != r)
        throw InputError(cfg_file + ": " + module_of(t) + " has rank " + std::to_string(R) + ", this run's lora.r is " +
                         std::to_string(r));
      lora_target_shape(arch, t, &o, &in);
      const std::vector<float> A = find_tensor(st, tensor_key(l, module_of(t), 'A'), r, in);
      const std::vector<float> B = find_tensor(st, tensor_key(l, module_of(t), 'B'), o, r);
      std::copy(A.begin(), A.end(), params.data() + layout.at(lora_pair_name(l, t) + "A").offset);
      std::copy(B.begin(), B.end(), params.data() + layout.at(lora_pair_name(l, t) + "B").offset);
    }
  }
  for (const TensorSpec& s : layout.tensors) check_finite(params.data() + s.offset, s.local_size(), st.path(), s.name);
}

}  // namespace lora
