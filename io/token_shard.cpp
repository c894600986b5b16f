#include "io/token_shard.h"

#include "io/input_error.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace lora {
namespace {

constexpr char kMagic[8] = {'L', 'D', 'T', 'O', 'K', 'E', 'N', 'S'};
constexpr uint32_t kVersion = 1;
constexpr size_t kHeaderBytes = 64;
constexpr uint32_t kFlagHasMask = 1u;
// Tokens are converted through a bounded buffer so a large shard never needs a
// second full-size copy of its bytes in memory.
constexpr size_t kChunkTokens = size_t(1) << 18;

struct Header {
  uint32_t version = kVersion;
  uint32_t token_bytes = 0;
  uint32_t vocab_size = 0;
  uint32_t flags = 0;
  uint64_t n_tokens = 0;
};

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw InputError(path + ": " + what);
}

// Explicit byte order, so shards are portable whatever the host's endianness.
uint64_t load_le(const uint8_t* p, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) v |= uint64_t(p[i]) << (8 * i);
  return v;
}

void store_le(uint8_t* p, uint64_t v, size_t n) {
  for (size_t i = 0; i < n; ++i) p[i] = uint8_t(v >> (8 * i));
}

void check_token_bytes(const std::string& path, int64_t token_bytes) {
  if (token_bytes != 2 && token_bytes != 4)
    fail(path, "unsupported token_bytes " + std::to_string(token_bytes) + " (must be 2 or 4)");
}

void check_tokens(const std::string& path, const std::vector<uint32_t>& tokens,
                  uint32_t vocab_size) {
  if (tokens.size() < 2)
    fail(path, "has " + std::to_string(tokens.size()) +
                   " token(s); a shard needs at least 2 (an input and a target)");
  for (size_t i = 0; i < tokens.size(); ++i)
    if (tokens[i] >= vocab_size)
      fail(path, "token " + std::to_string(tokens[i]) + " at index " + std::to_string(i) +
                     " is out of range (vocab_size " + std::to_string(vocab_size) + ")");
}

void check_mask(const std::string& path, const std::vector<uint8_t>& mask) {
  for (size_t i = 0; i < mask.size(); ++i)
    if (mask[i] > 1)
      fail(path, "mask value " + std::to_string(mask[i]) + " at index " + std::to_string(i) +
                     " is not 0 or 1");
}

Header decode_header(const std::string& path, const uint8_t* bytes) {
  if (std::memcmp(bytes, kMagic, sizeof kMagic) != 0)
    fail(path, "bad magic: not a token shard (expected \"LDTOKENS\")");
  Header h;
  h.version = uint32_t(load_le(bytes + 8, 4));
  h.token_bytes = uint32_t(load_le(bytes + 12, 4));
  h.vocab_size = uint32_t(load_le(bytes + 16, 4));
  h.flags = uint32_t(load_le(bytes + 20, 4));
  h.n_tokens = load_le(bytes + 24, 8);
  if (h.version != kVersion)
    fail(path, "unsupported token shard version " + std::to_string(h.version) +
                   " (this build reads version " + std::to_string(kVersion) + ")");
  check_token_bytes(path, h.token_bytes);
  if (h.flags & ~kFlagHasMask)
    fail(path, "unknown flag bits " + std::to_string(h.flags & ~kFlagHasMask));
  return h;
}

std::vector<uint8_t> encode_header(const Header& h) {
  std::vector<uint8_t> bytes(kHeaderBytes, 0);
  std::memcpy(bytes.data(), kMagic, sizeof kMagic);
  store_le(bytes.data() + 8, h.version, 4);
  store_le(bytes.data() + 12, h.token_bytes, 4);
  store_le(bytes.data() + 16, h.vocab_size, 4);
  store_le(bytes.data() + 20, h.flags, 4);
  store_le(bytes.data() + 24, h.n_tokens, 8);
  return bytes;
}

// The header's promise against the real file size. Compared by division first so
// a garbage n_tokens cannot overflow the product.
void check_file_size(const std::string& path, const Header& h, uint64_t file_size) {
  const uint64_t payload = file_size - kHeaderBytes;
  const uint64_t per_token = h.token_bytes + ((h.flags & kFlagHasMask) ? 1 : 0);
  if (h.n_tokens > payload / per_token)
    fail(path, "truncated: header declares " + std::to_string(h.n_tokens) + " tokens of " +
                   std::to_string(per_token) + " byte(s) each (tokens + mask), file has " +
                   std::to_string(payload) + " bytes after the header");
  if (h.n_tokens * per_token != payload)
    fail(path, "file size " + std::to_string(file_size) + " does not match header (expected " +
                   std::to_string(kHeaderBytes + h.n_tokens * per_token) + " bytes)");
}

void read_exact(std::ifstream& in, const std::string& path, void* dst, size_t n) {
  if (!in.read(static_cast<char*>(dst), std::streamsize(n))) fail(path, "read error");
}

std::vector<uint32_t> read_tokens(std::ifstream& in, const std::string& path, const Header& h) {
  std::vector<uint32_t> tokens(h.n_tokens);
  std::vector<uint8_t> buf;
  for (uint64_t done = 0; done < h.n_tokens;) {
    const size_t n = size_t(std::min<uint64_t>(kChunkTokens, h.n_tokens - done));
    buf.resize(n * h.token_bytes);
    read_exact(in, path, buf.data(), buf.size());
    for (size_t i = 0; i < n; ++i)
      tokens[done + i] = uint32_t(load_le(buf.data() + i * h.token_bytes, h.token_bytes));
    done += n;
  }
  return tokens;
}

void write_tokens(std::ofstream& out, const std::vector<uint32_t>& tokens, size_t token_bytes) {
  std::vector<uint8_t> buf;
  for (size_t done = 0; done < tokens.size();) {
    const size_t n = std::min(kChunkTokens, tokens.size() - done);
    buf.resize(n * token_bytes);
    for (size_t i = 0; i < n; ++i)
      store_le(buf.data() + i * token_bytes, tokens[done + i], token_bytes);
    out.write(reinterpret_cast<const char*>(buf.data()), std::streamsize(buf.size()));
    done += n;
  }
}

}  // namespace

TokenShard read_token_shard(const std::string& path) {
  std::error_code ec;
  const uint64_t file_size = std::filesystem::file_size(path, ec);
  if (ec) fail(path, "cannot read token shard: " + ec.message());
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "cannot open token shard for reading");
  if (file_size < kHeaderBytes)
    fail(path, "truncated: " + std::to_string(file_size) + " bytes, shorter than the " +
                   std::to_string(kHeaderBytes) + "-byte header");

  uint8_t header_bytes[kHeaderBytes];
  read_exact(in, path, header_bytes, kHeaderBytes);
  const Header h = decode_header(path, header_bytes);
  check_file_size(path, h, file_size);

  TokenShard shard;
  shard.path = path;
  shard.vocab_size = h.vocab_size;
  shard.tokens = read_tokens(in, path, h);
  check_tokens(path, shard.tokens, h.vocab_size);
  if (h.flags & kFlagHasMask) {
    shard.mask.resize(h.n_tokens);
    read_exact(in, path, shard.mask.data(), shard.mask.size());
    check_mask(path, shard.mask);
  }
  return shard;
}

void write_token_shard(const std::string& path, const std::vector<uint32_t>& tokens,
                       uint32_t vocab_size, const std::vector<uint8_t>* mask,
                       int token_bytes) {
  check_token_bytes(path, token_bytes);
  check_tokens(path, tokens, vocab_size);
  if (token_bytes == 2) {
    const auto big = std::find_if(tokens.begin(), tokens.end(),
                                  [](uint32_t t) { return t > 0xFFFFu; });
    if (big != tokens.end())
      fail(path, "token " + std::to_string(*big) + " at index " +
                     std::to_string(big - tokens.begin()) + " does not fit in token_bytes 2");
  }
  if (mask) {
    if (mask->size() != tokens.size())
      fail(path, "mask has " + std::to_string(mask->size()) + " values for " +
                     std::to_string(tokens.size()) + " tokens");
    check_mask(path, *mask);
  }

  Header h;
  h.token_bytes = uint32_t(token_bytes);
  h.vocab_size = vocab_size;
  h.flags = mask ? kFlagHasMask : 0;
  h.n_tokens = tokens.size();

  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) fail(path, "cannot open for writing");
  const std::vector<uint8_t> header = encode_header(h);
  out.write(reinterpret_cast<const char*>(header.data()), std::streamsize(header.size()));
  write_tokens(out, tokens, size_t(token_bytes));
  if (mask) out.write(reinterpret_cast<const char*>(mask->data()), std::streamsize(mask->size()));
  out.close();
  if (!out) fail(path, "write failed");
}

}  // namespace lora
