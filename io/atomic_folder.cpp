#include "io/atomic_folder.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>

namespace lora {

namespace {

namespace fs = std::filesystem;

void fsync_path(const fs::path& p, int flags) {
  const int fd = ::open(p.c_str(), flags | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error(p.string() + ": cannot open to fsync: " + std::strerror(errno));
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) throw std::runtime_error(p.string() + ": fsync failed: " + std::strerror(errno));
}

}  // namespace

void write_folder_atomically(const std::string& dir, const std::string& what,
                             const std::function<void(const fs::path& tmp)>& fill) {
  const fs::path out = fs::path(dir).lexically_normal();
  std::error_code ec;
  if (fs::exists(out, ec) && !(fs::is_directory(out, ec) && fs::is_empty(out, ec)))
    throw std::runtime_error(out.string() + ": exists and is not an empty folder; choose a new one or remove it");
  const fs::path parent = out.has_parent_path() ? out.parent_path() : fs::path(".");
  const fs::path tmp = parent / ("." + out.filename().string() + ".tmp." + std::to_string(::getpid()));
  fs::remove_all(tmp, ec);
  if (!fs::create_directory(tmp, ec))
    throw std::runtime_error(out.string() + ": cannot write " + what + " there: cannot create " + tmp.string() + ": " +
                             ec.message());
  try {
    fill(tmp);
    for (const fs::directory_entry& e : fs::directory_iterator(tmp))
      if (e.is_regular_file()) fsync_path(e.path(), O_RDONLY);
    fsync_path(tmp, O_RDONLY | O_DIRECTORY);
    // rename() replaces an empty folder; a non-empty one (filled since the check) makes it fail.
    if (std::rename(tmp.c_str(), out.c_str()) != 0)
      throw std::runtime_error(out.string() + ": cannot move the finished folder there from " + tmp.string() + ": " +
                               std::strerror(errno));
    fsync_path(parent, O_RDONLY | O_DIRECTORY);
  } catch (const fs::filesystem_error& e) {
    fs::remove_all(tmp, ec);
    throw std::runtime_error(out.string() + ": cannot write " + what + ": " + e.what());
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
}

}  // namespace lora
