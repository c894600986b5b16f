// Shared by the libFuzzer targets: hands the fuzzer's bytes to a reader that takes a path.
// The bytes go into one memfd per process (no disk traffic, nothing left behind), reached
// as /proc/self/fd/N, which std::filesystem and std::ifstream open like any file.
#pragma once
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace fuzz {

inline const std::string& memfd_path(const char* name) {
  static int fd = -1;
  static std::string path;
  if (fd < 0) {
    fd = memfd_create(name, 0);
    if (fd < 0) {
      std::perror("memfd_create");
      std::abort();
    }
    path = "/proc/self/fd/" + std::to_string(fd);
  }
  return path;
}

// Replaces the memfd's contents with [data, data + size) and returns its path.
inline const std::string& put(const char* name, const uint8_t* data, size_t size) {
  const std::string& path = memfd_path(name);
  const int fd = std::stoi(path.substr(path.rfind('/') + 1));
  if (ftruncate(fd, 0) != 0) std::abort();
  size_t done = 0;
  while (done < size) {
    const ssize_t n = pwrite(fd, data + done, size - done, off_t(done));
    if (n <= 0) std::abort();
    done += size_t(n);
  }
  return path;
}

}  // namespace fuzz
