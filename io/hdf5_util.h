// Small RAII and error helpers over the HDF5 C API, shared by the base-weight and
// checkpoint files.
#pragma once
#include <hdf5.h>

#include <stdexcept>
#include <string>

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

template <typename T>
hid_t h5_native();
template <>
inline hid_t h5_native<float>() { return H5T_NATIVE_FLOAT; }
template <>
inline hid_t h5_native<double>() { return H5T_NATIVE_DOUBLE; }

}  // namespace lora
