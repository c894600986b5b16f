#include "trainer/export.h"

#include <cstdio>
#include <vector>

#include "io/checkpoint.h"
#include "io/input_error.h"
#include "io/peft_adapter.h"
#include "model/param_layout.h"
#include "trainer/config_loader.h"

namespace lora {

int export_command(const ExportOptions& o) {
  try {
    const RunConfig cfg = load_run_config(o.yaml);
    const LoraLayout layout = lora_layout(cfg.model, cfg.lora, 1);  // tp 1: full tensors
    std::vector<float> params(layout.total);
    // Verified as merge and resume verify it: seal, model shape, base, r, targets, scale, finite.
    read_adapter(o.adapter, cfg, base_fingerprint(cfg.model), layout, 0, params.data());
    write_peft_adapter(o.peft, cfg.lora, cfg.model, layout, params, cfg.model.init == "hf" ? cfg.model.path : "");
    std::printf("exported %s (%zu LoRA tensors, targets %s, r %d) -> %s/adapter_config.json, "
                "%s/adapter_model.safetensors (PEFT LoRA, GPT-2 modules)\n",
                o.adapter.c_str(), layout.tensors.size(), cfg.lora.target_list().c_str(), cfg.lora.r, o.peft.c_str(),
                o.peft.c_str());
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
