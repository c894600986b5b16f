#include "io/safetensors_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "model/dtype.h"

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

// float -> IEEE half, round to nearest even; beyond the range inf, NaN stays NaN.
uint16_t float_to_f16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  const uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return sign | 0x7e00u;   // NaN
  if (a >= 0x477ff000u) return sign | 0x7c00u;  // rounds to >= 65520: inf
  if (a < 0x38800000u) {                        // below 2^-14: subnormal half (or zero)
    if (a < 0x33000000u) return sign;           // below half of the smallest subnormal 2^-25
    const uint32_t e = a >> 23, m = (a & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126 - e;  // 14..24: value = m * 2^(e-150), half unit 2^-24
    uint32_t h = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (h & 1u))) ++h;
    return sign | static_cast<uint16_t>(h);
  }
  uint32_t h = ((a >> 13) - (112u << 10));  // rebias the exponent 127 -> 15
  const uint32_t rem = a & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;  // may carry into the exponent: right
  return sign | static_cast<uint16_t>(h);
}

}  // namespace

void write_safetensors(const std::string& path, const std::vector<StWriteTensor>& tensors) {
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
    if (t.dtype != StDtype::F32 && t.dtype != StDtype::BF16 && t.dtype != StDtype::F16)
      throw std::invalid_argument(path + ": tensor '" + t.name + "': cannot write dtype " + st_dtype_name(t.dtype));
    const uint64_t eb = st_dtype_bytes(t.dtype);
    header[t.name] = {{"dtype", st_dtype_name(t.dtype)}, {"shape", t.shape}, {"data_offsets", {offset, offset + eb * n}}};
    offset += eb * n;
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
    std::vector<uint16_t> half;
    for (const StWriteTensor& t : tensors) {
      if (t.dtype == StDtype::F32) {
        write_all(fd, t.data.data(), 4 * t.data.size(), path);
        continue;
      }
      half.resize(t.data.size());
      for (size_t i = 0; i < t.data.size(); ++i)
        half[i] = t.dtype == StDtype::BF16 ? float_to_bf16(t.data[i]) : float_to_f16(t.data[i]);
      write_all(fd, half.data(), 2 * half.size(), path);
    }
    if (::fsync(fd) != 0) throw std::runtime_error(path + ": fsync failed: " + std::strerror(errno));
  } catch (...) {
    ::close(fd);
    throw;
  }
  if (::close(fd) != 0) throw std::runtime_error(path + ": close failed: " + std::strerror(errno));
}

}  // namespace lora
