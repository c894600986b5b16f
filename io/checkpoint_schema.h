// What io/checkpoint.cpp (writing) and io/checkpoint_load.cpp (verifying, reading) must
// agree on: the format tag, the tensor groups and the attributes mirrored from the config.
// The integrity check is the raw-byte seal of io/file_seal.h, written by AtomicH5File.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "io/checkpoint.h"

namespace lora::ckpt {

// /state attribute "format". v2: the file is sealed (io/file_seal.h); v1 files, whose
// checksum was computed through libhdf5, are refused as unverifiable.
inline constexpr const char* kFormat = "lora_dist checkpoint v2";

// The three tensor groups of a checkpoint and the LoraSlices buffer each holds; every one
// has one dataset per tensor of the trainable layout, under the layout's name. The
// parameters' group is /adapter with LoRA, /model with full fine-tuning.
struct TensorGroup {
  const char* path;
  float* LoraSlices::*buffer;
  // AdamW's second moments are running means of squared gradients, never negative (their
  // square root is taken): a file with a negative one was not written by a run.
  bool non_negative = false;
};
inline const char* params_group(bool full_finetuning) { return full_finetuning ? "/model" : "/adapter"; }
inline std::vector<TensorGroup> tensor_groups(bool full_finetuning) {
  return {{params_group(full_finetuning), &LoraSlices::params},
          {"/optimizer/m", &LoraSlices::m},
          {"/optimizer/v", &LoraSlices::v, /*non_negative=*/true}};
}

// Every group a checkpoint has, parents first (the writer creates them in this order).
inline std::vector<const char*> groups(bool full_finetuning) {
  return {params_group(full_finetuning), "/optimizer", "/optimizer/m", "/optimizer/v", "/state"};
}

// /state attributes that must equal the run's model config for a resume.
struct ModelField {
  const char* name;
  int ModelConfig::*field;
};
inline constexpr ModelField kModelShape[] = {{"n_layer", &ModelConfig::n_layer},
                                             {"n_head", &ModelConfig::n_head},
                                             {"d_model", &ModelConfig::d_model},
                                             {"vocab_size", &ModelConfig::vocab_size},
                                             {"context", &ModelConfig::context}};

// The architecture's sizes beyond GPT's shape, resolved by its spec (model/arch.h), written
// beside kModelShape. A file without them (written before the Llama family) is a GPT model,
// whose defaults they then are.
struct ArchField {
  const char* name;
  int ArchSpec::*field;
};
inline constexpr ArchField kArchShape[] = {{"n_kv_head", &ArchSpec::n_kv_head},
                                           {"head_dim", &ArchSpec::head_dim},
                                           {"ffn", &ArchSpec::ffn}};

// "0x0123456789abcdef"
std::string hex64(uint64_t v);

}  // namespace lora::ckpt
