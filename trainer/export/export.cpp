#include "trainer/export/export.h"


#include <cstdio>
#include <filesystem>
#include <vector>

#include "comm/mpi_singleton.h"
#include "io/checkpoint.h"
#include "io/input_error.h"
#include "io/peft_adapter.h"
#include "model/param_layout.h"
#include "trainer/config/config_loader.h"
#include "trainer/export/merge.h"

namespace lora {

int export_command(const ExportOptions& o) {
  try {
    const RunConfig cfg = load_run_config(o.yaml);
    // A full fine-tuning config (lora.enabled: false) has no adapter: its model, e.g.
    // model.init: file of the run's model.h5, is exported as it is, with --merged.
    const bool full = !cfg.lora.enabled;
    if (full && (!o.adapter.empty() || !o.peft.empty()))
      throw ConfigError(o.yaml + ": lora.enabled is false (full fine-tuning): there is no adapter; export --merged DIR "
                        "alone writes the config's model (model.init: file of the run's model.h5) as an HF folder");
    if (!full && o.adapter.empty()) throw ConfigError("export: --adapter is required (" + o.yaml + " trains LoRA)");
    const LoraLayout layout = lora_layout(cfg.model, cfg.lora, 1);  // tp 1: full tensors
    std::vector<float> params(layout.total);
    // Verified as merge and resume verify it: seal, model shape, base, r, targets, scale, finite.
    if (!full) read_adapter(o.adapter, cfg.model, cfg.lora, base_fingerprint(cfg.model), layout, 0, params.data());
    // Both folders checked before either is written: a refused --merged leaves no --peft behind.
    for (const std::string& dir : {o.peft, o.merged}) {
      std::error_code ec;
      if (!dir.empty() && std::filesystem::exists(dir, ec) &&
          !(std::filesystem::is_directory(dir, ec) && std::filesystem::is_empty(dir, ec)))
        throw std::runtime_error(std::filesystem::path(dir).lexically_normal().string() +
                                 ": exists and is not an empty folder; choose a new one or remove it");
    }
    const bool gpt = cfg.model.arch == "gpt";
    // What a merged folder is to transformers: GPT-2's, or the Llama family's (Qwen2 for q/k/v biases alone).
    const std::string hf_class = gpt ? "HF GPT-2, GPT2LMHeadModel names; use it with model.init: hf or "
                                       "GPT2LMHeadModel.from_pretrained"
                                     : "HF Llama family, LlamaForCausalLM names; use it with model.init: hf or "
                                       "AutoModelForCausalLM.from_pretrained";
    if (!o.peft.empty()) {
      write_peft_adapter(o.peft, cfg.lora, cfg.model, layout, params, cfg.model.init == "hf" ? cfg.model.path : "");
      std::printf("exported %s (%zu LoRA tensors, targets %s, r %d) -> %s/adapter_config.json, "
                  "%s/adapter_model.safetensors (PEFT LoRA, %s modules)\n",
                  o.adapter.c_str(), layout.tensors.size(), cfg.lora.target_list().c_str(), cfg.lora.r, o.peft.c_str(),
                  o.peft.c_str(), gpt ? "GPT-2" : "Llama");
    }
    if (!o.merged.empty()) {
      // The merge builds the model on a one-rank communicator: MPI, as a singleton (no mpirun).
      MpiSingleton mpi;
      const std::string dtypes = export_merged_hf(cfg, o.adapter, o.merged, o.dtype);
      const std::string from = !o.dtype.empty()           ? "--dtype " + o.dtype
                               : cfg.model.init == "hf" ? "the dtype of " + cfg.model.path + "'s weight files"
                                                        : "model.init: " + cfg.model.init + " bases are float32";
      if (cfg.model.dtype == "nf4")
        std::printf("note: model.dtype nf4: the base merged is the NF4 one the adapter was trained on, dequantized\n");
      if (full)
        std::printf("exported the model of %s (full fine-tuning: no adapter) -> %s/model.safetensors, %s/config.json "
                    "(%s)\n",
                    o.yaml.c_str(), o.merged.c_str(), o.merged.c_str(), hf_class.c_str());
      else
        std::printf("merged %s (W0 + s B A, targets %s, scale %g) into the base -> %s/model.safetensors, "
                    "%s/config.json (%s)\n",
                    o.adapter.c_str(), cfg.lora.target_list().c_str(), double(cfg.lora.scale()), o.merged.c_str(),
                    o.merged.c_str(), hf_class.c_str());
      std::printf("note: merged weights stored as %s (%s); merged in fp32%s\n", dtypes.c_str(), from.c_str(),
                  dtypes == "F32" ? "" : " and rounded once, so an update below that dtype's resolution of W0 is lost");
    }
    return 0;
  } catch (const ConfigError& e) {
    std::fprintf(stderr, "lora_dist: config error: %s\n", e.what());
    return kExitConfig;
  } catch (const InputError& e) {  // CheckpointError included: the adapter file is named
    std::fprintf(stderr, "lora_dist: input error: %s\n", e.what());
    return kExitBadInput;
  } catch (const std::runtime_error& e) {  // the output folder (write_peft_adapter names it)
    std::fprintf(stderr, "lora_dist: export: %s\n", e.what());
    return kExitConfig;
  }
}

}  // namespace lora
