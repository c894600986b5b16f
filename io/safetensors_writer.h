// Writes a .safetensors file of F32, BF16 or F16 tensors: the format io/safetensors_file.h reads
// (8-byte little-endian header length, JSON header {name: {dtype, shape, data_offsets}},
// raw little-endian data). The header is padded with spaces to a multiple of 8 bytes, as the
// reference writer does, so every tensor starts 8-byte aligned when the file is mapped.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "io/safetensors_file.h"

namespace lora {

struct StWriteTensor {
  std::string name;
  std::vector<uint64_t> shape;
  std::vector<float> data;  // row-major, elements = product of shape
  StDtype dtype = StDtype::F32;  // as stored: F32, or BF16 / F16 rounded to nearest even
};

// Writes `path` (not atomically: callers write into a temporary folder) and fsyncs it.
// Throws std::runtime_error naming the path on an I/O error and std::invalid_argument when a
// tensor's data does not match its shape, a name repeats or a dtype is not F32/BF16/F16.
void write_safetensors(const std::string& path, const std::vector<StWriteTensor>& tensors);

}  // namespace lora
