// Reading a user's base-weights file, which lora_dist did not write and cannot trust: every
// dataset's class, size and shape is checked against the layout before anything is read,
// libhdf5's parsing of the file runs first in a probe process (io/h5_probe.h), and every
// value a rank reads must be finite. io/BASE_WEIGHTS.md documents what is accepted.
#include "io/base_weights.h"


#include <cstdio>
#include <filesystem>
#include <optional>

#include "io/atomic_h5_file.h"
#include "io/file_seal.h"
#include "io/first_process.h"
#include "io/h5_probe.h"
#include "io/h5_tensor_slice.h"
#include "io/input_error.h"

namespace lora {

namespace {

std::string dims_str(const std::vector<hsize_t>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

std::string spec_shape(const TensorSpec& s) {
  const std::string two = dims_str({hsize_t(s.rows), hsize_t(s.cols)});
  return s.rows == 1 || s.cols == 1 ? two + " (or [" + std::to_string(s.rows * s.cols) + "])" : two;
}

// The file's shape fits the layout's: equal, or a 1-D [n] where the layout has a vector
// [1, n] or [n, 1] (GPT-2 files store biases and LayerNorm parameters as [n]).
bool shape_fits(const std::vector<hsize_t>& dims, const TensorSpec& s) {
  if (dims.size() == 2) return dims[0] == hsize_t(s.rows) && dims[1] == hsize_t(s.cols);
  return dims.size() == 1 && (s.rows == 1 || s.cols == 1) && dims[0] == hsize_t(s.rows) * hsize_t(s.cols);
}

// "float16", "bfloat16", "float64", "int32", "uint8", "string", ...
std::string type_name(hid_t type) {
  const size_t bytes = H5Tget_size(type);
  switch (H5Tget_class(type)) {
    case H5T_FLOAT: {
      size_t spos = 0, epos = 0, esize = 0, mpos = 0, msize = 0;
      H5Tget_fields(type, &spos, &epos, &esize, &mpos, &msize);
      if (bytes == 2 && esize == 8) return "bfloat16";
      return "float" + std::to_string(8 * bytes);
    }
    case H5T_INTEGER: return std::string(H5Tget_sign(type) == H5T_SGN_NONE ? "uint" : "int") + std::to_string(8 * bytes);
    case H5T_STRING: return "string";
    case H5T_COMPOUND: return "compound";
    case H5T_ENUM: return "enum";
    case H5T_ARRAY: return "array";
    case H5T_BITFIELD: return "bitfield";
    case H5T_OPAQUE: return "opaque";
    case H5T_REFERENCE: return "reference";
    case H5T_VLEN: return "variable-length";
    default: return "unknown class";
  }
}

// Floating point of 2, 4 or 8 bytes: libhdf5 converts it to the buffer's type on reading.
bool is_readable_float(hid_t type) {
  const size_t bytes = H5Tget_size(type);
  return H5Tget_class(type) == H5T_FLOAT && (bytes == 2 || bytes == 4 || bytes == 8);
}

// "lora_dist: note: base.h5: converted to float32 on reading: float64: wte, wpe (2 tensors)"
void print_conversion_note(const std::string& path, const std::vector<std::pair<std::string, std::string>>& converted) {
  std::vector<std::string> kinds;
  for (const auto& c : converted)
    if (std::find(kinds.begin(), kinds.end(), c.second) == kinds.end()) kinds.push_back(c.second);
  std::string text;
  for (const std::string& kind : kinds) {
    std::string names;
    size_t n = 0;
    for (const auto& c : converted)
      if (c.second == kind && n++ < 8) names += (names.empty() ? "" : ", ") + c.first;
    if (n > 8) names += ", ... (" + std::to_string(n - 8) + " more)";
    text += (text.empty() ? "" : "; ") + kind + ": " + names + " (" + std::to_string(n) + " tensor" + (n > 1 ? "s" : "") + ")";
  }
  std::fprintf(stderr, "lora_dist: note: %s: converted to float32 on reading: %s\n", path.c_str(), text.c_str());
}

}  // namespace

template <typename T>
void read_base_weights(const std::string& path, const ParamLayout& layout, int tp_rank, T* buffer,
                       uint16_t* bf16_buffer, Nf4Staging* nf4) {
  if (layout.total_bf16 > 0 && !bf16_buffer)
    throw std::logic_error("read_base_weights: the layout has bf16 tensors but no bf16 buffer was given");
  if (layout.total_nf4 > 0 && !nf4) throw std::logic_error("read_base_weights: the layout has NF4 tensors but no staging");
  std::vector<float> wide;  // a bf16 or NF4 tensor, read as float32 before rounding or quantizing
  h5_quiet();
  if (!std::filesystem::is_regular_file(path)) throw InputError(path + ": base weights file not found");
  if (has_seal(path)) verify_seal(path);  // written by `lora_dist merge`: check it before parsing
  std::vector<std::string> names;
  for (const TensorSpec& s : layout.tensors) names.push_back(s.name);
  probe_hdf5_file(path, names);

  const H5Handle fapl = h5_fapl_unlocked();
  H5Handle file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl), H5Fclose);
  if (!file.valid()) throw InputError(path + ": not a readable HDF5 file (truncated or corrupted?)");
  std::vector<std::pair<std::string, std::string>> converted;  // (tensor, its type in the file)
  for (const TensorSpec& s : layout.tensors) {
    const std::string what = path + ": dataset '" + s.name + "'";
    if (H5Lexists(file, s.name.c_str(), H5P_DEFAULT) <= 0)
      throw InputError(path + ": missing dataset '" + s.name + "' of shape " + spec_shape(s));
    H5Handle ds(H5Dopen2(file, s.name.c_str(), H5P_DEFAULT), H5Dclose);
    if (!ds.valid()) throw InputError(what + ": cannot open it (corrupted HDF5?)");
    H5Handle type(H5Dget_type(ds), H5Tclose);
    if (!type.valid()) throw InputError(what + ": unreadable datatype (corrupted HDF5?)");
    if (!is_readable_float(type))
      throw InputError(what + " has type " + type_name(type) +
                       "; base weights must be floating point: float32, or float64 / float16 / bfloat16, "
                       "converted to float32");
    // Compared with the layout before anything is allocated or read: a file may declare any shape.
    const std::vector<hsize_t> dims = h5_shape(ds);
    if (!shape_fits(dims, s))
      throw InputError(what + " has shape " + dims_str(dims) + ", the model config needs " + spec_shape(s));
    if (H5Tget_size(type) != sizeof(float)) converted.emplace_back(s.name, type_name(type));
    const bool staged = s.dtype != DType::F32;
    if (staged) wide.resize(s.local_size());
    try {
      if (staged) h5_read_rank_slice(ds, path, s.name, s, tp_rank, wide.data());
      else h5_read_rank_slice(ds, path, s.name, s, tp_rank, buffer + s.offset);
    } catch (const std::runtime_error& e) {
      throw InputError(std::string(e.what()) + " (truncated or corrupted?)");
    }
    if (staged) check_finite(wide.data(), wide.size(), path, s.name);
    if (s.dtype == DType::BF16) {
      uint16_t* dst = bf16_buffer + s.offset;
      for (size_t i = 0; i < wide.size(); ++i) dst[i] = float_to_bf16(wide[i]);
      continue;
    }
    if (s.dtype == DType::NF4) {
      nf4->quantize(s, wide.data());
      continue;
    }
    check_finite(buffer + s.offset, s.local_size(), path, s.name);
  }
  if (!converted.empty() && tp_rank == 0 && is_first_process()) print_conversion_note(path, converted);
}

template <typename T>
void write_base_weights(const std::string& path, const ParamLayout& layout, const T* buffer) {
  if (layout.total_bf16 > 0 || layout.total_nf4 > 0)
    throw std::runtime_error(path + ": write_base_weights writes a model.dtype fp32 model; this one holds bf16 or NF4 matrices");
  for (const TensorSpec& s : layout.tensors)
    if (s.local_rows < s.rows || s.local_cols != s.cols)
      throw std::runtime_error(path + ": write_base_weights needs an unsharded (tp=1) layout");
  AtomicH5File out(path);
  for (const TensorSpec& s : layout.tensors)
    h5_write_matrix(out.file(), s.name, s.rows, s.cols, buffer + s.offset, out.tmp_path(), "'" + s.name + "'");
  out.commit();
}

void write_gathered_base_weights(Communicator& comm, const std::string& path, const ParamLayout& layout,
                                 const float* local) {
  if (layout.total_bf16 > 0)
    throw std::runtime_error(path + ": write_gathered_base_weights writes a model.dtype fp32 model; this one holds "
                             "bf16 matrices");
  std::optional<AtomicH5File> out;
  if (comm.rank(Group::World) == 0) out.emplace(path);
  h5_write_gathered_tensors(comm, layout, local, out ? &*out : nullptr, "");
  if (out) out->commit();
}

template void read_base_weights<float>(const std::string&, const ParamLayout&, int, float*, uint16_t*, Nf4Staging*);
template void read_base_weights<double>(const std::string&, const ParamLayout&, int, double*, uint16_t*, Nf4Staging*);
template void write_base_weights<float>(const std::string&, const ParamLayout&, const float*);
template void write_base_weights<double>(const std::string&, const ParamLayout&, const double*);

}  // namespace lora
