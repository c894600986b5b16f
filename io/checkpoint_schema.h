// What io/checkpoint.cpp (writing) and io/checkpoint_load.cpp (verifying, reading) must
// agree on: the format tag, the tensor groups, the attributes mirrored from the config,
// and the checksum, which both sides compute with the same function over the file.
#pragma once
#include <hdf5.h>

#include <cstdint>
#include <string>

#include "io/checkpoint.h"

namespace lora::ckpt {

inline constexpr const char* kFormat = "lora_dist checkpoint v1";  // /state attribute "format"

// The three tensor groups of a checkpoint and the LoraSlices buffer each holds; every one
// has one dataset per tensor of the LoRA layout, under the layout's name.
struct TensorGroup {
  const char* path;
  float* LoraSlices::*buffer;
};
inline constexpr TensorGroup kTensorGroups[] = {
    {"/adapter", &LoraSlices::params}, {"/optimizer/m", &LoraSlices::m}, {"/optimizer/v", &LoraSlices::v}};

// Every group a checkpoint has, parents first (the checksum walks them in this order).
inline constexpr const char* kGroups[] = {"/adapter", "/optimizer", "/optimizer/m", "/optimizer/v", "/state"};

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

// "0x0123456789abcdef"
std::string hex64(uint64_t v);

// The checksum stored in /state's "checksum": one Hash64 over, for each group of kGroups in
// order, its path, its attributes in name order (name and stored bytes; "checksum" itself
// left out) and its datasets in name order (name, shape, float32 values). So it covers
// every tensor and every counter and setting in the file. Throws std::runtime_error
// ("<file>: ...") when a part cannot be read.
uint64_t file_checksum(hid_t file, const std::string& path);

}  // namespace lora::ckpt
