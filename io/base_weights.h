// Frozen base weights in HDF5: one dataset per tensor at the file's root, named as in
// model/param_layout.cpp ("wte", "h.0.attn.qkv.weight", ...), in its full unsharded shape
// [rows, cols] (a vector may be 1-D [n]), weights stored [out, in] like torch.nn.Linear;
// float32, or float64 / float16 / bfloat16 converted on reading. `h5ls base.h5` lists them.
// Each rank reads only its shard, by hyperslab. io/BASE_WEIGHTS.md has the details.
#pragma once
#include <cstdint>
#include <string>

#include "io/atomic_h5_file.h"
#include "model/param_layout.h"

namespace lora {

// Fills this rank's buffer (layout built for its tp) from `path`; vocabulary padding rows
// are zero. A file lora_dist sealed is verified first; libhdf5's parsing is probed in a
// child process first (io/h5_probe.h). Throws InputError naming the file and the dataset
// when one is missing, mis-shaped, not floating point or holds a NaN or infinity, and when
// the file is damaged. Prints one note (world rank 0) naming the tensors converted.
// Tensors the layout marks BF16 (model.dtype bf16) go to `bf16_buffer` instead, read as
// float32 (checked finite) and rounded to the nearest bf16, ties to even.
template <typename T>
void read_base_weights(const std::string& path, const ParamLayout& layout, int tp_rank, T* buffer,
                       uint16_t* bf16_buffer = nullptr);

// Writes a whole model (a layout built with tp = 1) to `path`, replacing it atomically and
// sealed (io/atomic_h5_file.h).
template <typename T>
void write_base_weights(const std::string& path, const ParamLayout& layout, const T* buffer);

// The same file written a tensor and a block at a time, so that the writer never holds the
// whole model (a full fine-tuning's model.h5, gathered over TP block by block): begin_tensor,
// then blocks covering it, for every tensor; commit() makes the file appear.
class BaseWeightsWriter {
 public:
  explicit BaseWeightsWriter(const std::string& path) : out_(path) {}
  void begin_tensor(const std::string& name, int rows, int cols) {
    name_ = "'" + name + "'";
    tensor_ = h5_create_matrix(out_.file(), name, rows, cols, out_.tmp_path(), name_);
  }
  // Rows [row0, row0 + rows) x columns [col0, col0 + cols) of the current tensor.
  template <typename T>
  void write_block(int row0, int rows, int col0, int cols, const T* data) {
    h5_write_block(tensor_, row0, rows, col0, cols, data, out_.tmp_path(), name_);
  }
  void commit() {
    tensor_.reset();
    out_.commit();
  }

 private:
  AtomicH5File out_;
  H5Handle tensor_;
  std::string name_;
};

}  // namespace lora
