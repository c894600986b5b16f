#include "io/safetensors_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <stdexcept>

namespace lora {

namespace {

void write_all(int fd, const void* p, size_t n, const std::string& path) {
  const char* c = static_cast<const char*>(p);
  while (n > 0) {
    const ssize_t w = ::write(fd, c, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) throw std::runtime_error(path + ": write failed: " + std::strerror(errno));
    c += w, n -= static_cast<size_t>(w);
  }
}

}  // namespace

void write_safetensors_f32(const std::string& path, const std::vector<StWriteTensor>& tensors) {
  static_assert(sizeof(float) == 4, "F32 is IEEE single precision");
  // The format is little-endian; this project only builds for little-endian hosts (x86-64,
  // aarch64), so the floats are written as they lie in memory.
  nlohmann::json header = nlohmann::json::object();
  uint64_t offset = 0;
  for (const StWriteTensor& t : tensors) {
    uint64_t n = 1;
    for (uint64_t d : t.shape) n *= d;
    if (n != t.data.size())
      throw std::invalid_argument(path + ": tensor '" + t.name + "' has " + std::to_string(t.data.size()) +
                                  " values for " + std::to_string(n) + " elements");
    if (header.contains(t.name)) throw std::invalid_argument(path + ": tensor '" + t.name + "' written twice");
    header[t.name] = {{"dtype", "F32"}, {"shape", t.shape}, {"data_offsets", {offset, offset + 4 * n}}};
    offset += 4 * n;
  }
  header["__metadata__"] = {{"format", "pt"}};  // what transformers/PEFT write; loaders check it
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  unsigned char len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(uint64_t(text.size()) >> (8 * i));

  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error(path + ": cannot create: " + std::strerror(errno));
  try {
    write_all(fd, len, 8, path);
    write_all(fd, text.data(), text.size(), path);
    for (const StWriteTensor& t : tensors) write_all(fd, t.data.data(), 4 * t.data.size(), path);
    if (::fsync(fd) != 0) throw std::runtime_error(path + ": fsync failed: " + std::strerror(errno));
  } catch (...) {
    ::close(fd);
    throw;
  }
  if (::close(fd) != 0) throw std::runtime_error(path + ": close failed: " + std::strerror(errno));
}

}  // namespace lora
