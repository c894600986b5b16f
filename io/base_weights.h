// Frozen base weights in HDF5: one float32 dataset per tensor at the file's root, named
// as in model/param_layout.cpp ("wte", "h.0.attn.qkv.weight", ...), in its full
// unsharded shape [rows, cols], weights stored [out, in] like torch.nn.Linear.
// `h5ls base.h5` lists them. Each rank reads only its shard, by hyperslab.
#pragma once
#include <string>

#include "model/param_layout.h"

namespace lora {

// Fills this rank's buffer (layout built for its tp) from `path`; vocabulary padding rows
// are zero. Throws naming the file and the dataset when one is missing or mis-shaped.
template <typename T>
void read_base_weights(const std::string& path, const ParamLayout& layout, int tp_rank, T* buffer);

// Writes a whole model (a layout built with tp = 1) to `path`, replacing it.
template <typename T>
void write_base_weights(const std::string& path, const ParamLayout& layout, const T* buffer);

}  // namespace lora
