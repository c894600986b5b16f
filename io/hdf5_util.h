// Small RAII and error helpers over the HDF5 C API, shared by the base-weight and
// checkpoint files.
#pragma once
#include <hdf5.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

namespace lora {

// Closes an HDF5 handle with the right H5?close when it goes out of scope.
class H5Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  H5Handle() = default;
  H5Handle(hid_t id, Closer close) : id_(id), close_(close) {}
  H5Handle(const H5Handle&) = delete;
  H5Handle& operator=(const H5Handle&) = delete;
  H5Handle(H5Handle&& o) noexcept : id_(o.id_), close_(o.close_) { o.id_ = -1; }
  H5Handle& operator=(H5Handle&& o) noexcept {
    reset();
    id_ = o.id_;
    close_ = o.close_;
    o.id_ = -1;
    return *this;
  }
  ~H5Handle() { reset(); }
  void reset() {
    if (id_ >= 0 && close_) close_(id_);
    id_ = -1;
  }
  hid_t get() const { return id_; }
  operator hid_t() const { return id_; }
  bool valid() const { return id_ >= 0; }

 private:
  hid_t id_ = -1;
  Closer close_ = nullptr;
};

// Throws "<file>: <what>" when an HDF5 call returned a negative id or status.
inline hid_t h5_check(hid_t id, const std::string& file, const std::string& what) {
  if (id < 0) throw std::runtime_error(file + ": " + what);
  return id;
}

// Silences HDF5's own error stack printing; our exceptions say what failed and where.
inline void h5_quiet() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }

// File access properties without HDF5's own file locks. Checkpoints never need them (a
// file is written under a temporary name and renamed when complete, and nothing reads a
// file being written), and flock() fails on some cluster filesystems (NFS, Lustre
// without -o flock), where HDF5 would refuse to open any file.
inline H5Handle h5_fapl_unlocked() {
  H5Handle fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
#if H5_VERSION_GE(1, 10, 7)
  H5Pset_file_locking(fapl, false, true);
#endif
  return fapl;
}

// File creation properties with a user block of `bytes` at the start of the file, which
// libhdf5 skips (it finds the superblock after it); io/file_seal.h keeps the seal there.
inline H5Handle h5_fcpl_user_block(hsize_t bytes) {
  H5Handle fcpl(H5Pcreate(H5P_FILE_CREATE), H5Pclose);
  if (!fcpl.valid() || H5Pset_userblock(fcpl, bytes) < 0) throw std::runtime_error("cannot set an HDF5 user block");
  return fcpl;
}

template <typename T>
hid_t h5_native();
template <>
inline hid_t h5_native<float>() { return H5T_NATIVE_FLOAT; }
template <>
inline hid_t h5_native<double>() { return H5T_NATIVE_DOUBLE; }

// Reads rows [row0, row0+nrows) x columns [col0, col0+ncols) of the 2-D dataset `ds` into
// dst (row-major, ncols wide) with one hyperslab selection. A 1-D dataset stands for a
// [1, n] or [n, 1] matrix (a bias as GPT-2 files store it): one of the ranges is then
// [0, 1) and the other is the range of elements.
template <typename T>
void h5_read_block(hid_t ds, const std::string& file, const std::string& name, hsize_t row0, hsize_t nrows,
                   hsize_t col0, hsize_t ncols, T* dst) {
  if (nrows == 0 || ncols == 0) return;
  H5Handle space(H5Dget_space(ds), H5Sclose);
  const bool vector = H5Sget_simple_extent_ndims(space) == 1;
  if (vector && nrows != 1 && ncols != 1) throw std::runtime_error(file + ": " + name + ": a 1-D dataset read as a matrix");
  const hsize_t start[2] = {row0, col0}, count[2] = {nrows, ncols};
  const hsize_t vstart[1] = {nrows == 1 ? row0 + col0 : row0}, vcount[1] = {nrows * ncols};
  h5_check(H5Sselect_hyperslab(space, H5S_SELECT_SET, vector ? vstart : start, nullptr, vector ? vcount : count, nullptr),
           file, name + ": bad hyperslab");
  H5Handle mem(H5Screate_simple(vector ? 1 : 2, vector ? vcount : count, nullptr), H5Sclose);
  h5_check(H5Dread(ds, h5_native<T>(), mem, space, H5P_DEFAULT, dst), file, "cannot read dataset '" + name + "'");
}

// Writing float32 [rows x cols] datasets; what = how messages name one ("'wte'",
// "/adapter/h.0.lora.q.A").
// An empty dataset `name` in `loc`, for h5_write_block to fill.
inline H5Handle h5_create_matrix(hid_t loc, const std::string& name, hsize_t rows, hsize_t cols,
                                 const std::string& file, const std::string& what) {
  const hsize_t dims[2] = {rows, cols};
  H5Handle space(H5Screate_simple(2, dims, nullptr), H5Sclose);
  // No creation and modification times in the object header: the same tensors give the same bytes.
  H5Handle dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  H5Pset_obj_track_times(dcpl, false);
  return H5Handle(h5_check(H5Dcreate2(loc, name.c_str(), H5T_IEEE_F32LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT),
                           file, "cannot create dataset " + what),
                  H5Dclose);
}

// Rows [row0, row0 + rows) x columns [col0, col0 + cols) of dataset `ds` from `data` (row-major).
template <typename T>
void h5_write_block(hid_t ds, hsize_t row0, hsize_t rows, hsize_t col0, hsize_t cols, const T* data,
                    const std::string& file, const std::string& what) {
  const hsize_t start[2] = {row0, col0}, count[2] = {rows, cols};
  H5Handle file_space(H5Dget_space(ds), H5Sclose);
  H5Handle mem_space(H5Screate_simple(2, count, nullptr), H5Sclose);
  h5_check(H5Sselect_hyperslab(file_space, H5S_SELECT_SET, start, nullptr, count, nullptr), file,
           "cannot select rows of dataset " + what);
  h5_check(H5Dwrite(ds, h5_native<T>(), mem_space, file_space, H5P_DEFAULT, data), file,
           "cannot write dataset " + what);
}

// Dataset `name` in `loc`, whole, from `data` (row-major, float or double).
template <typename T>
void h5_write_matrix(hid_t loc, const std::string& name, hsize_t rows, hsize_t cols, const T* data,
                     const std::string& file, const std::string& what) {
  H5Handle ds = h5_create_matrix(loc, name, rows, cols, file, what);
  h5_check(H5Dwrite(ds, h5_native<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, data), file, "cannot write dataset " + what);
}

// Shape of a dataset as {dim0, dim1, ...}.
inline std::vector<hsize_t> h5_shape(hid_t ds) {
  H5Handle space(H5Dget_space(ds), H5Sclose);
  std::vector<hsize_t> dims(static_cast<size_t>(std::max(0, H5Sget_simple_extent_ndims(space))));
  H5Sget_simple_extent_dims(space, dims.data(), nullptr);
  return dims;
}

// --- attributes: scalars and strings on a group or dataset ------------------------------
// Integers are stored as 64-bit (bool as 0/1), floating point as float64, strings as
// fixed-length, so h5dump and h5py show them as plain values.

inline void h5_write_attr_raw(hid_t obj, const std::string& name, hid_t type, const void* data) {
  H5Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  H5Handle attr(H5Acreate2(obj, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  if (!attr.valid() || H5Awrite(attr, type, data) < 0) throw std::runtime_error("cannot write attribute '" + name + "'");
}

template <typename T>
void h5_write_attr(hid_t obj, const std::string& name, const T& value) {
  if constexpr (std::is_convertible_v<const T&, std::string>) {
    const std::string s(value);
    H5Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(type, std::max<size_t>(1, s.size()));  // HDF5 has no zero-length strings
    H5Tset_strpad(type, H5T_STR_NULLPAD);
    h5_write_attr_raw(obj, name, type, s.c_str());       // c_str() has the NUL an empty one needs
  } else if constexpr (std::is_floating_point_v<T>) {
    const double d = value;
    h5_write_attr_raw(obj, name, H5T_NATIVE_DOUBLE, &d);
  } else if constexpr (std::is_unsigned_v<T> && !std::is_same_v<T, bool>) {
    const uint64_t u = value;
    h5_write_attr_raw(obj, name, H5T_NATIVE_UINT64, &u);
  } else {
    static_assert(std::is_integral_v<T>, "h5_write_attr: an integer, floating point or string value");
    const int64_t i = value;
    h5_write_attr_raw(obj, name, H5T_NATIVE_INT64, &i);
  }
}

// Reads attribute `name` of `obj` as T (HDF5 converts between numeric types); throws
// "<file>: <where>: missing or unreadable attribute '<name>'", and "... out of range" when
// an integer does not fit T (a stored int64 read as int is checked, never truncated). A
// string longer than kMaxAttrString is refused before anything is allocated for it.
inline constexpr size_t kMaxAttrString = 1 << 16;
template <typename T>
T h5_read_attr(hid_t obj, const std::string& name, const std::string& file, const std::string& where) {
  const std::string what = where + ": missing or unreadable attribute '" + name + "'";
  if (H5Aexists(obj, name.c_str()) <= 0) throw std::runtime_error(file + ": " + what);
  H5Handle attr(h5_check(H5Aopen(obj, name.c_str(), H5P_DEFAULT), file, what), H5Aclose);
  if constexpr (std::is_same_v<T, std::string>) {
    H5Handle type(h5_check(H5Aget_type(attr), file, what), H5Tclose);
    if (H5Tget_class(type) != H5T_STRING || H5Tis_variable_str(type) > 0 || H5Tget_size(type) > kMaxAttrString)
      throw std::runtime_error(file + ": " + what);
    std::string s(H5Tget_size(type), '\0');
    h5_check(H5Aread(attr, type, s.data()), file, what);
    return s.substr(0, s.find('\0'));
  } else {
    using Stored = std::conditional_t<std::is_floating_point_v<T>, double,
                                      std::conditional_t<std::is_unsigned_v<T> && !std::is_same_v<T, bool>, uint64_t, int64_t>>;
    const hid_t mem = std::is_floating_point_v<T> ? H5T_NATIVE_DOUBLE
                      : std::is_same_v<Stored, uint64_t> ? H5T_NATIVE_UINT64 : H5T_NATIVE_INT64;
    H5Handle space(h5_check(H5Aget_space(attr), file, what), H5Sclose);
    if (H5Sget_simple_extent_npoints(space) != 1) throw std::runtime_error(file + ": " + what + " (not a scalar)");
    Stored v{};
    h5_check(H5Aread(attr, mem, &v), file, what);
    if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
      if (v < static_cast<Stored>(std::numeric_limits<T>::min()) || v > static_cast<Stored>(std::numeric_limits<T>::max()))
        throw std::runtime_error(file + ": " + where + ": attribute '" + name + "' = " + std::to_string(v) +
                                 " is out of range");
    } else if constexpr (std::is_same_v<T, bool>) {
      if (v != 0 && v != 1)
        throw std::runtime_error(file + ": " + where + ": attribute '" + name + "' = " + std::to_string(v) +
                                 " is not 0 or 1");
    }
    return static_cast<T>(v);
  }
}

}  // namespace lora
