// An HDF5 file that appears under its final name only once complete, sealed and on disk:
// it is written as `path`.tmp with a user block for the seal (io/file_seal.h), and
// commit() closes it, seals it, fsyncs it and renames it. Checkpoints, adapter.h5 and the
// base weights `lora_dist merge` writes all go through it, so every file lora_dist reads
// back can be verified before libhdf5 parses it.
#pragma once
#include <map>
#include <string>

#include "io/hdf5_util.h"

namespace lora {

class AtomicH5File {
 public:
  explicit AtomicH5File(std::string path);
  ~AtomicH5File();  // before commit() (an exception): removes the .tmp
  AtomicH5File(const AtomicH5File&) = delete;
  AtomicH5File& operator=(const AtomicH5File&) = delete;

  const std::string& tmp_path() const { return tmp_; }
  hid_t file() const { return file_; }

  // Creates group `name` on first use (parents must come first), then returns it.
  hid_t group(const std::string& name);

  // Flush (which is where a full disk shows), close, seal, fsync, rename, fsync the folder.
  void commit();

 private:
  std::string path_, tmp_;
  H5Handle file_;
  std::map<std::string, H5Handle> groups_;
  bool committed_ = false;
};

}  // namespace lora
