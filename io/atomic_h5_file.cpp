#include "io/atomic_h5_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "io/file_seal.h"

namespace lora {

namespace fs = std::filesystem;

namespace {

void fsync_path(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error(path + ": cannot open to fsync: " + std::strerror(errno));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) throw std::runtime_error(path + ": fsync failed: " + std::strerror(err));
}

}  // namespace

AtomicH5File::AtomicH5File(std::string path) : path_(std::move(path)), tmp_(path_ + ".tmp") {
  h5_quiet();
  const fs::path parent = fs::path(path_).parent_path();
  if (!parent.empty()) fs::create_directories(parent);
  const H5Handle fcpl = h5_fcpl_user_block(kSealBytes);
  file_ = H5Handle(h5_check(H5Fcreate(tmp_.c_str(), H5F_ACC_TRUNC, fcpl, h5_fapl_unlocked()), tmp_, "cannot create"),
                   H5Fclose);
}

AtomicH5File::~AtomicH5File() {
  if (committed_) return;
  groups_.clear();
  file_.reset();
  std::error_code ec;
  fs::remove(tmp_, ec);
}

hid_t AtomicH5File::group(const std::string& name) {
  auto it = groups_.find(name);
  if (it != groups_.end()) return it->second;
  H5Handle gcpl(H5Pcreate(H5P_GROUP_CREATE), H5Pclose);
  H5Pset_obj_track_times(gcpl, false);  // no timestamps: the same contents give the same bytes
  const hid_t g = H5Gcreate2(file_, name.c_str(), H5P_DEFAULT, gcpl, H5P_DEFAULT);
  return groups_.emplace(name, H5Handle(h5_check(g, tmp_, "cannot create group " + name), H5Gclose)).first->second;
}

// The seal is computed after H5Fclose, over the bytes close leaves; the fsync comes after
// the seal so that it covers both (fsync of any descriptor flushes every dirty page).
void AtomicH5File::commit() {
  h5_check(H5Fflush(file_, H5F_SCOPE_GLOBAL), tmp_, "flush failed (disk full?)");
  groups_.clear();
  if (H5Fclose(file_.get()) < 0) throw std::runtime_error(tmp_ + ": close failed");
  file_ = H5Handle();
  seal_file(tmp_);
  fsync_path(tmp_, O_WRONLY);
  if (std::rename(tmp_.c_str(), path_.c_str()) != 0)
    throw std::runtime_error(tmp_ + ": cannot rename to " + path_ + ": " + std::strerror(errno));
  committed_ = true;
  const fs::path parent = fs::path(path_).parent_path();
  fsync_path(parent.empty() ? "." : parent.string(), O_RDONLY | O_DIRECTORY);  // makes the rename durable
}

}  // namespace lora
