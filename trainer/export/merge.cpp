#include "trainer/export/merge.h"

#include <mpi.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>

#include "comm/mpi_communicator.h"
#include "io/atomic_folder.h"
#include "io/base_weights.h"
#include "io/checkpoint.h"
#include "io/hf_base_weights.h"
#include "io/hf_model_folder.h"
#include "io/safetensors_writer.h"
#include "model/gpt.h"
#include "trainer/config/config_loader.h"
#include "trainer/train/load_base.h"

namespace lora {

namespace {

// The base of cfg with the adapter folded in (W0 + s B A), whole (tp 1), in fp32; with
// model.dtype nf4, W0 is the dequantized NF4 base the adapter was trained on.
struct MergedModel {
  MpiCommunicator self{MPI_COMM_SELF, 1, 1};  // the whole, unsharded model
  std::unique_ptr<GptModel<float>> model;
};

std::unique_ptr<MergedModel> merged_model(const RunConfig& cfg, const std::string& adapter) {
  auto m = std::make_unique<MergedModel>();
  // Merged in fp32 whatever model.dtype trained with: W0 + s B A rounded to bf16 would lose
  // most of the update (|s B A| is often below bf16's resolution of |W0|), and the file
  // format stores float32. A bf16 run then loads and rounds the merged file once.
  ModelConfig mc = cfg.model;
  mc.dtype = "fp32";
  // A full fine-tuning config (lora.enabled: false) has no adapter: its base is the model.
  LoraConfig lc = cfg.lora;
  if (!lc.enabled) std::fill(std::begin(lc.targets), std::end(lc.targets), false), lc.enabled = true;
  m->model = std::make_unique<GptModel<float>>(mc, lc, m->self, 1, 1);
  GptModel<float>& model = *m->model;
  // The adapter is checked against the base of this config (shape, fingerprint), its own
  // LoRA settings and every tensor's shape before anything is merged.
  if (cfg.lora.enabled)
    read_adapter(adapter, cfg.model, cfg.lora, base_fingerprint(cfg.model), model.lora_layout(), 0, model.lora_params().data());
  if (cfg.model.dtype == "nf4") {
    // The adapter was trained against the NF4 base, so it is merged into that base as the run
    // saw it: quantized as at load, dequantized to fp32 (QLoRA's merge).
    GptModel<float> quantized(cfg.model, lc, m->self, 1, 1);
    load_frozen_base(cfg, quantized, m->self, /*log=*/nullptr);
    for (const TensorSpec& s : quantized.base_layout().tensors) quantized.base_tensor_values(s, model.base_tensor(s.name));
  } else {
    load_frozen_base(cfg, model, m->self, /*log=*/nullptr);
  }
  model.merge_lora(true);
  return m;
}

// The shortest decimal that reads back as the same float (1e-05, not 9.99999974738e-06).
double short_decimal(float v) {
  for (int digits = 6; digits < 10; ++digits) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.*g", digits, double(v));
    if (std::strtof(buf, nullptr) == v) return std::strtod(buf, nullptr);
  }
  return v;
}

const char* torch_dtype(const std::set<std::string>& dtypes) {
  if (dtypes.size() != 1) return "float32";
  const std::string& d = *dtypes.begin();
  return d == "BF16" ? "bfloat16" : d == "F16" ? "float16" : "float32";
}

}  // namespace

void merge_adapter_into_base(const RunConfig& cfg, const std::string& adapter, const std::string& out) {
  if (!cfg.lora.enabled)
    throw ConfigError(cfg.source_path + ": lora.enabled is false (full fine-tuning): there is no adapter to merge; "
                      "the run's model.h5 is already the merged model");
  const auto m = merged_model(cfg, adapter);
  write_base_weights(out, m->model->base_layout(), m->model->base().data());
}

namespace {

// The config.json of a merged Llama-family folder: the source folder's own when the base came
// from one (same shape; it keeps keys such as bos/eos ids), else one written from model.*.
nlohmann::ordered_json llama_config(const RunConfig& cfg, const char* dtype) {
  const ModelConfig& mc = cfg.model;
  if (mc.init == "hf") {
    std::ifstream in(std::filesystem::path(mc.path) / "config.json");
    nlohmann::ordered_json j = nlohmann::ordered_json::parse(in);  // read_hf_llama_config parsed it already
    j["torch_dtype"] = dtype;
    return j;
  }
  const ArchSpec a = arch_spec(mc);
  // Qwen2 is the Llama block with q, k, v biases and no other: transformers has no Llama key for that.
  const bool qwen2 = a.qkv_bias && !a.o_bias;
  nlohmann::ordered_json j = {{"model_type", qwen2 ? "qwen2" : "llama"},
                              {"architectures", {qwen2 ? "Qwen2ForCausalLM" : "LlamaForCausalLM"}},
                              {"hidden_size", a.d_model},
                              {"intermediate_size", a.ffn},
                              {"num_hidden_layers", a.n_layer},
                              {"num_attention_heads", a.n_head},
                              {"num_key_value_heads", a.n_kv_head},
                              {"head_dim", a.head_dim},
                              {"vocab_size", a.vocab},
                              {"max_position_embeddings", a.context},
                              {"rms_norm_eps", short_decimal(a.norm_eps)},
                              {"rope_theta", a.rope_theta},
                              {"hidden_act", "silu"},
                              {"tie_word_embeddings", a.tied_head},
                              {"mlp_bias", a.mlp_bias},
                              {"torch_dtype", dtype}};
  if (!qwen2) j["attention_bias"] = a.qkv_bias;
  j["rope_scaling"] = nullptr;
  if (a.rope_scaling.factor > 0)
    j["rope_scaling"] = {{"rope_type", "llama3"},
                         {"factor", a.rope_scaling.factor},
                         {"low_freq_factor", a.rope_scaling.low_freq_factor},
                         {"high_freq_factor", a.rope_scaling.high_freq_factor},
                         {"original_max_position_embeddings", a.rope_scaling.original_max_position_embeddings}};
  return j;
}

nlohmann::ordered_json gpt2_config(const ModelConfig& mc, const char* dtype) {
  return {{"model_type", "gpt2"},
          {"architectures", {"GPT2LMHeadModel"}},
          {"n_layer", mc.n_layer},
          {"n_head", mc.n_head},
          {"n_embd", mc.d_model},
          {"vocab_size", mc.vocab_size},
          {"n_positions", mc.context},
          {"n_ctx", mc.context},
          {"n_inner", nullptr},
          {"layer_norm_epsilon", short_decimal(mc.ln_eps)},
          {"activation_function", "gelu_new"},
          {"tie_word_embeddings", true},
          {"scale_attn_weights", true},
          {"torch_dtype", dtype}};
}

}  // namespace

std::string export_merged_hf(const RunConfig& cfg, const std::string& adapter, const std::string& dir,
                             const std::string& dtype_wanted) {
  const auto m = merged_model(cfg, adapter);
  const ParamLayout& layout = m->model->base_layout();
  const float* base = m->model->base().data();
  const std::string& arch = cfg.model.arch;
  std::unique_ptr<HfModelFolder> source;  // an HF base: each tensor keeps the dtype of its file
  if (cfg.model.init == "hf") source = std::make_unique<HfModelFolder>(cfg.model.path);
  std::vector<StWriteTensor> tensors;
  std::set<std::string> dtypes;
  for (const TensorSpec& s : layout.tensors) {  // tp 1: local == full, no padding rows
    const HfSource src = hf_source(s.name, arch);
    const size_t cols = size_t(s.cols);
    size_t row0 = 0;
    for (size_t b = 0; b < src.names.size(); ++b) {  // a fused Llama tensor goes back to its parts
      const size_t rows = src.names.size() > 1 ? size_t(s.blocks[b]) : size_t(s.rows);
      const float* p = base + s.offset + row0 * cols;
      row0 += rows;
      StWriteTensor t;
      // As GPT2LMHeadModel.save_pretrained names GPT-2's; Llama's names are already whole.
      t.name = (arch == "gpt" ? "transformer." : "") + src.names[b];
      if (rows == 1 || cols == 1) {
        t.shape = {uint64_t(rows * cols)};
        t.data.assign(p, p + rows * cols);
      } else if (src.transposed) {  // Conv1D: [in, out]
        t.shape = {uint64_t(cols), uint64_t(rows)};
        t.data.resize(rows * cols);
        for (size_t r = 0; r < rows; ++r)
          for (size_t c = 0; c < cols; ++c) t.data[c * rows + r] = p[r * cols + c];
      } else {
        t.shape = {uint64_t(rows), uint64_t(cols)};
        t.data.assign(p, p + rows * cols);
      }
      if (source) t.dtype = source->find(src.names[b])->tensor->dtype;  // read_hf_base_weights found it, F32/F16/BF16
      if (!dtype_wanted.empty())
        t.dtype = dtype_wanted == "bf16" ? StDtype::BF16 : dtype_wanted == "fp16" ? StDtype::F16 : StDtype::F32;
      dtypes.insert(st_dtype_name(t.dtype));
      tensors.push_back(std::move(t));
    }
  }
  const char* dtype = torch_dtype(dtypes);
  const nlohmann::ordered_json config = arch == "gpt" ? gpt2_config(cfg.model, dtype) : llama_config(cfg, dtype);
  write_folder_atomically(dir, "the merged model", [&](const std::filesystem::path& tmp) {
    write_safetensors((tmp / "model.safetensors").string(), tensors);
    std::ofstream f(tmp / "config.json");
    f << config.dump(2) << "\n";
    f.close();
    if (!f) throw std::runtime_error((tmp / "config.json").string() + ": write failed");
  });
  std::string names;
  for (const std::string& d : dtypes) names += (names.empty() ? "" : "+") + d;
  return names;
}

}  // namespace lora
