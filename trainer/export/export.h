// `lora_dist export --peft DIR`: a trained adapter (adapter.h5 or a checkpoint) as a Hugging
// Face PEFT LoRA adapter for GPT-2 (io/peft_adapter.h), loadable with
// PeftModel.from_pretrained(GPT2LMHeadModel..., DIR); `lora_dist export --merged DIR`: the
// base with the adapter folded in, as a Hugging Face GPT-2 folder (model.safetensors +
// config.json, trainer/export/merge.h) that GPT2LMHeadModel.from_pretrained and `model.init: hf`
// load with no LoRA code. Either or both. One process, no mpirun.
#pragma once
#include <string>

namespace lora {

struct ExportOptions {
  std::string yaml;     // the run's config: base model and LoRA settings the adapter is checked against
  std::string adapter;  // adapter.h5 or a checkpoint
  std::string peft;     // PEFT adapter folder to write (may be empty if merged is not)
  std::string merged;   // merged HF GPT-2 folder to write (may be empty if peft is not)
  std::string dtype;    // --merged's tensors: "fp32", "bf16", "fp16", or empty: the base's as loaded
};

// Returns the exit status: 0; 3 for an unusable adapter (named); 2 for a bad config or a
// folder that cannot be written (named, with why).
int export_command(const ExportOptions& o);

}  // namespace lora
