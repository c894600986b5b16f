#include "io/base_weights.h"

#include <algorithm>
#include <filesystem>

#include "io/hdf5_util.h"

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
    T* dst = buffer + s.offset;
    std::fill(dst, dst + s.local_size(), T(0));
    const hsize_t lr = s.local_rows, lc = s.local_cols;
    switch (s.shard) {
      case Shard::Replicated: h5_read_block(ds, path, s.name, 0, lr, 0, lc, dst); break;
      case Shard::Cols: h5_read_block(ds, path, s.name, 0, lr, static_cast<hsize_t>(tp_rank) * lc, lc, dst); break;
      case Shard::Rows: {  // the last rank's slice may run into vocabulary padding
        const hsize_t r0 = static_cast<hsize_t>(tp_rank) * lr;
        const hsize_t n = r0 >= dims[0] ? 0 : std::min<hsize_t>(lr, dims[0] - r0);
        h5_read_block(ds, path, s.name, r0, n, 0, lc, dst);
        break;
      }
      case Shard::QkvRows: {
        const hsize_t b = lr / 3;
        for (hsize_t blk = 0; blk < 3; ++blk)
          h5_read_block(ds, path, s.name, blk * (s.rows / 3) + tp_rank * b, b, 0, lc, dst + blk * b * lc);
        break;
      }
    }
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
    const hsize_t dims[2] = {static_cast<hsize_t>(s.rows), static_cast<hsize_t>(s.cols)};
    H5Handle space(H5Screate_simple(2, dims, nullptr), H5Sclose);
    H5Handle ds(h5_check(H5Dcreate2(file, s.name.c_str(), H5T_IEEE_F32LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                         path, "cannot create dataset '" + s.name + "'"),
                H5Dclose);
    h5_check(H5Dwrite(ds, h5_native<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, buffer + s.offset), path,
             "cannot write dataset '" + s.name + "'");
  }
}

template void read_base_weights<float>(const std::string&, const ParamLayout&, int, float*);
template void read_base_weights<double>(const std::string&, const ParamLayout&, int, double*);
template void write_base_weights<float>(const std::string&, const ParamLayout&, const float*);
template void write_base_weights<double>(const std::string&, const ParamLayout&, const double*);

}  // namespace lora
