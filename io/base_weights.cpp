#include "io/base_weights.h"

#include <filesystem>

#include "io/h5_tensor_slice.h"

namespace lora {

namespace {

std::string shape_str(hsize_t r, hsize_t c) { return "[" + std::to_string(r) + ", " + std::to_string(c) + "]"; }

}  // namespace

template <typename T>
void read_base_weights(const std::string& path, const ParamLayout& layout, int tp_rank, T* buffer) {
  h5_quiet();
  if (!std::filesystem::exists(path)) throw std::runtime_error(path + ": base weights file not found");
  const H5Handle fapl = h5_fapl_unlocked();
  H5Handle file(h5_check(H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl), path, "not an HDF5 file"), H5Fclose);
  for (const TensorSpec& s : layout.tensors) {
    if (H5Lexists(file, s.name.c_str(), H5P_DEFAULT) <= 0)
      throw std::runtime_error(path + ": missing dataset '" + s.name + "' of shape " + shape_str(s.rows, s.cols));
    H5Handle ds(h5_check(H5Dopen2(file, s.name.c_str(), H5P_DEFAULT), path, "cannot open '" + s.name + "'"), H5Dclose);
    const std::vector<hsize_t> dims = h5_shape(ds);
    if (dims.size() != 2 || dims[0] != static_cast<hsize_t>(s.rows) || dims[1] != static_cast<hsize_t>(s.cols))
      throw std::runtime_error(path + ": dataset '" + s.name + "' has shape " +
                               shape_str(dims.empty() ? 0 : dims[0], dims.size() == 2 ? dims[1] : 0) +
                               ", the model config needs " + shape_str(s.rows, s.cols));
    h5_read_rank_slice(ds, path, s.name, s, tp_rank, buffer + s.offset);
  }
}

template <typename T>
void write_base_weights(const std::string& path, const ParamLayout& layout, const T* buffer) {
  h5_quiet();
  H5Handle file(h5_check(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), path, "cannot create file"),
                H5Fclose);
  for (const TensorSpec& s : layout.tensors) {
    if (s.local_rows < s.rows || s.local_cols != s.cols)
      throw std::runtime_error(path + ": write_base_weights needs an unsharded (tp=1) layout");
    h5_write_matrix(file, s.name, s.rows, s.cols, buffer + s.offset, path, "'" + s.name + "'");
  }
}

template void read_base_weights<float>(const std::string&, const ParamLayout&, int, float*);
template void read_base_weights<double>(const std::string&, const ParamLayout&, int, double*);
template void write_base_weights<float>(const std::string&, const ParamLayout&, const float*);
template void write_base_weights<double>(const std::string&, const ParamLayout&, const double*);

}  // namespace lora
