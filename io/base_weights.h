// Frozen base weights in HDF5: one dataset per tensor at the file's root, named as in
// model/param_layout.cpp ("wte", "h.0.attn.qkv.weight", ...), in its full unsharded shape
// [rows, cols] (a vector may be 1-D [n]), weights stored [out, in] like torch.nn.Linear;
// float32, or float64 / float16 / bfloat16 converted on reading. `h5ls base.h5` lists them.
// Each rank reads only its shard, by hyperslab. io/BASE_WEIGHTS.md has the details.
#pragma once
#include <cstdint>
#include <string>

#include "comm/communicator.h"
#include "model/param_layout.h"

namespace lora {

// Fills this rank's buffer (layout built for its tp) from `path`; vocabulary padding rows
// are zero. A file lora_dist sealed is verified first; libhdf5's parsing is probed in a
// child process first (io/h5_probe.h). Throws InputError naming the file and the dataset
// when one is missing, mis-shaped, not floating point or holds a NaN or infinity, and when
// the file is damaged. Prints one note (world rank 0) naming the tensors converted.
// Tensors the layout marks BF16 (model.dtype bf16) go to `bf16_buffer` instead, read as
// float32 (checked finite) and rounded to the nearest bf16, ties to even. Tensors it marks NF4
// are read one at a time as float32 and handed to `nf4` (phase 1 of model/nf4_weight.h; the
// caller runs GptModel::finish_nf4 once every rank has read).
template <typename T>
void read_base_weights(const std::string& path, const ParamLayout& layout, int tp_rank, T* buffer,
                       uint16_t* bf16_buffer = nullptr, Nf4Staging* nf4 = nullptr);

// Writes a whole model (a layout built with tp = 1) to `path`, replacing it atomically and
// sealed (io/atomic_h5_file.h).
template <typename T>
void write_base_weights(const std::string& path, const ParamLayout& layout, const T* buffer);

// Collective over the world: the same file of the whole model, written by world rank 0 from
// every rank's slices (`local`, in `layout`, the rank's own base layout), gathered over the TP
// group of DP rank 0 16 MiB at a time, so no rank ever holds the whole model (a full
// fine-tuning's model.h5).
void write_gathered_base_weights(Communicator& comm, const std::string& path, const ParamLayout& layout,
                                 const float* local);

}  // namespace lora
