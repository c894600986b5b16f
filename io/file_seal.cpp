#include "io/file_seal.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "io/checkpoint_hash.h"

namespace lora {

namespace {

constexpr char kMagic[8] = {'L', 'D', 'C', 'K', 'S', 'U', 'M', '1'};
constexpr uint32_t kVersion = 1;
constexpr size_t kHeaderHashAt = 32;
constexpr size_t kChunk = 4 << 20;  // streamed, never the whole file in memory

// Fields are stored little-endian whatever the host, so a file moves between machines.
void put_le(unsigned char* p, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) p[i] = static_cast<unsigned char>(v >> (8 * i));
}
uint64_t get_le(const unsigned char* p, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= uint64_t(p[i]) << (8 * i);
  return v;
}

std::string hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%016llx", static_cast<unsigned long long>(v));
  return buf;
}

class Fd {
 public:
  Fd(const std::string& path, int flags) : fd_(::open(path.c_str(), flags | O_CLOEXEC)) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// Reads exactly n bytes at `offset`; false at a short read (EOF), throws on an I/O error.
bool pread_all(int fd, void* buf, size_t n, uint64_t offset, const std::string& path) {
  auto* p = static_cast<unsigned char*>(buf);
  while (n > 0) {
    const ssize_t got = ::pread(fd, p, n, static_cast<off_t>(offset));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) throw std::runtime_error(path + ": read failed: " + std::strerror(errno));
    if (got == 0) return false;
    p += got, n -= static_cast<size_t>(got), offset += static_cast<uint64_t>(got);
  }
  return true;
}

uint64_t file_size(int fd, const std::string& path) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw std::runtime_error(path + ": cannot stat: " + std::strerror(errno));
  return static_cast<uint64_t>(st.st_size);
}

// Hash64 of bytes [kSealBytes, end) of the open file.
uint64_t body_hash(int fd, uint64_t end, const std::string& path) {
  Hash64 h;
  std::vector<unsigned char> buf(kChunk);
  for (uint64_t at = kSealBytes; at < end;) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(kChunk, end - at));
    if (!pread_all(fd, buf.data(), n, at, path)) throw std::runtime_error(path + ": the file shrank while being read");
    h.update(buf.data(), n);
    at += n;
  }
  return h.digest();
}

uint64_t header_hash(const unsigned char* block) {
  unsigned char copy[kSealBytes];
  std::memcpy(copy, block, kSealBytes);
  std::memset(copy + kHeaderHashAt, 0, 8);
  return Hash64().update(copy, kSealBytes).digest();
}

}  // namespace

void seal_file(const std::string& path) {
  Fd fd(path, O_RDWR);
  if (fd.get() < 0) throw std::runtime_error(path + ": cannot open to seal: " + std::strerror(errno));
  const uint64_t size = file_size(fd.get(), path);
  unsigned char block[kSealBytes];
  if (size < kSealBytes || !pread_all(fd.get(), block, kSealBytes, 0, path))
    throw std::runtime_error(path + ": too short to hold a seal (written without its user block?)");
  for (unsigned char b : block)
    if (b != 0) throw std::runtime_error(path + ": the user block for the seal is not empty (not created for sealing?)");
  std::memcpy(block, kMagic, sizeof kMagic);
  put_le(block + 8, kVersion, 4);
  put_le(block + 12, kSealBytes, 4);
  put_le(block + 16, size, 8);
  put_le(block + 24, body_hash(fd.get(), size, path), 8);
  put_le(block + kHeaderHashAt, header_hash(block), 8);
  for (size_t done = 0; done < kSealBytes;) {
    const ssize_t n = ::pwrite(fd.get(), block + done, kSealBytes - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw std::runtime_error(path + ": cannot write the seal: " + std::strerror(errno));
    done += static_cast<size_t>(n);
  }
}

bool has_seal(const std::string& path) {
  Fd fd(path, O_RDONLY);
  char magic[sizeof kMagic];
  return fd.get() >= 0 && pread_all(fd.get(), magic, sizeof magic, 0, path) &&
         std::memcmp(magic, kMagic, sizeof kMagic) == 0;
}

void verify_seal(const std::string& path) {
  auto damaged = [&](const std::string& why) { return SealError(SealError::Damaged, path + ": " + why); };
  Fd fd(path, O_RDONLY);
  if (fd.get() < 0) throw damaged(std::string("cannot open: ") + std::strerror(errno));
  const uint64_t size = file_size(fd.get(), path);
  unsigned char block[kSealBytes] = {};
  const bool whole_block = pread_all(fd.get(), block, kSealBytes, 0, path);
  if (std::memcmp(block, kMagic, sizeof kMagic) != 0)
    throw SealError(SealError::Unsealed,
                    path + ": no lora_dist seal (LDCKSUM1) at the start of the file: written by a lora_dist older than "
                           "checkpoint format v2, or not by lora_dist, or its first bytes are damaged; it cannot be "
                           "verified before parsing, so it is refused");
  if (!whole_block) throw damaged("truncated: " + std::to_string(size) + " bytes, shorter than the seal");
  if (header_hash(block) != get_le(block + kHeaderHashAt, 8))
    throw damaged("the seal's header is damaged (its hash does not match)");
  if (get_le(block + 8, 4) != kVersion || get_le(block + 12, 4) != kSealBytes)
    throw damaged("seal version " + std::to_string(get_le(block + 8, 4)) + " with a " +
                  std::to_string(get_le(block + 12, 4)) + "-byte block is not one this lora_dist reads");
  const uint64_t length = get_le(block + 16, 8);
  if (length != size)
    throw damaged("truncated or extended: the seal records " + std::to_string(length) + " bytes, the file has " +
                  std::to_string(size));
  const uint64_t stored = get_le(block + 24, 8), computed = body_hash(fd.get(), size, path);
  if (stored != computed)
    throw damaged("checksum mismatch: stored " + hex(stored) + ", computed " + hex(computed) +
                  " (the file is corrupted or was modified after it was written)");
}

}  // namespace lora
