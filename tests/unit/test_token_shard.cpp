// Token shard format: round trips, exact header layout, and one test per way a
// file can be malformed (each error must name the file).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

#include "io/token_shard.h"
#include "unique_temp_path.h"

namespace lora {
namespace {

// Per-process scratch names (unique_temp_path.h): TempDir() is shared by every test process.
std::string temp_path(const std::string& name) {
  return test::unique_temp_path("shard_" + name).string();
}

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
}

void put_u32(std::vector<uint8_t>& bytes, size_t offset, uint32_t v) {
  for (int i = 0; i < 4; ++i) bytes[offset + i] = uint8_t(v >> (8 * i));
}

// Runs `fn`, which must throw std::runtime_error starting with `path` and
// containing `phrase`.
template <class Fn>
void expect_error(Fn fn, const std::string& path, const std::string& phrase) {
  try {
    fn();
    ADD_FAILURE() << "no error for " << path << " (expected \"" << phrase << "\")";
  } catch (const std::runtime_error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.rfind(path, 0), 0u) << "message does not start with the path: " << msg;
    EXPECT_NE(msg.find(phrase), std::string::npos) << "\"" << phrase << "\" not in: " << msg;
  }
}

void expect_read_error(const std::string& path, const std::string& phrase) {
  expect_error([&] { read_token_shard(path); }, path, phrase);
}

// A valid 5-token uint16 shard with a mask, as raw bytes, for the tests to damage.
std::vector<uint8_t> valid_shard_bytes(const std::string& path) {
  const std::vector<uint32_t> tokens = {1, 2, 3, 4, 5};
  const std::vector<uint8_t> mask = {0, 0, 1, 1, 1};
  write_token_shard(path, tokens, 10, &mask, 2);
  return read_bytes(path);
}

struct RoundTripCase {
  int token_bytes;
  bool with_mask;
};

class TokenShardRoundTrip : public testing::TestWithParam<RoundTripCase> {};

TEST_P(TokenShardRoundTrip, ReadsBackWhatWasWritten) {
  const auto [token_bytes, with_mask] = GetParam();
  const uint32_t vocab = token_bytes == 2 ? 65536 : 100000;
  std::vector<uint32_t> tokens;
  std::vector<uint8_t> mask;
  for (uint32_t i = 0; i < 1000; ++i) {
    tokens.push_back((i * 7919u) % vocab);
    mask.push_back(uint8_t(i % 3 == 0));
  }
  tokens.back() = vocab - 1;  // the largest token that fits
  const std::string path = temp_path("roundtrip_" + std::to_string(token_bytes) +
                                     (with_mask ? "_mask" : "_nomask") + ".bin");
  write_token_shard(path, tokens, vocab, with_mask ? &mask : nullptr, token_bytes);

  const TokenShard shard = read_token_shard(path);
  EXPECT_EQ(shard.path, path);
  EXPECT_EQ(shard.vocab_size, vocab);
  EXPECT_EQ(shard.size(), tokens.size());
  EXPECT_EQ(shard.tokens, tokens);
  EXPECT_EQ(shard.has_mask(), with_mask);
  EXPECT_EQ(shard.mask, with_mask ? mask : std::vector<uint8_t>{});
  EXPECT_EQ(read_bytes(path).size(), 64 + tokens.size() * (token_bytes + (with_mask ? 1 : 0)));
  std::remove(path.c_str());
}

INSTANTIATE_TEST_SUITE_P(WidthsAndMask, TokenShardRoundTrip,
                         testing::Values(RoundTripCase{2, false}, RoundTripCase{2, true},
                                         RoundTripCase{4, false}, RoundTripCase{4, true}));

TEST(TokenShard, HeaderLayoutIsAsDocumented) {
  const std::string path = temp_path("layout.bin");
  const std::vector<uint8_t> mask = {1, 0, 1};
  write_token_shard(path, {0x0102, 0x0304, 0x0506}, 70000, &mask, 4);
  const std::vector<uint8_t> b = read_bytes(path);
  const std::vector<uint8_t> expected = {
      'L', 'D', 'T', 'O', 'K', 'E', 'N', 'S',
      1, 0, 0, 0,                  // version
      4, 0, 0, 0,                  // token_bytes
      0x70, 0x11, 0x01, 0,         // vocab_size 70000
      1, 0, 0, 0,                  // flags: mask
      3, 0, 0, 0, 0, 0, 0, 0};     // n_tokens
  ASSERT_EQ(b.size(), 64u + 3 * 4 + 3);
  EXPECT_EQ(std::vector<uint8_t>(b.begin(), b.begin() + 32), expected);
  EXPECT_EQ(std::vector<uint8_t>(b.begin() + 32, b.begin() + 64), std::vector<uint8_t>(32, 0));
  EXPECT_EQ(std::vector<uint8_t>(b.begin() + 64, b.begin() + 68), (std::vector<uint8_t>{2, 1, 0, 0}));
  EXPECT_EQ(std::vector<uint8_t>(b.end() - 3, b.end()), mask);
  std::remove(path.c_str());
}

TEST(TokenShardErrors, MissingFile) {
  expect_read_error(temp_path("does_not_exist.bin"), "cannot read");
}

TEST(TokenShardErrors, TruncatedHeader) {
  const std::string path = temp_path("short_header.bin");
  std::vector<uint8_t> bytes = valid_shard_bytes(path);
  bytes.resize(40);
  write_bytes(path, bytes);
  expect_read_error(path, "shorter than the 64-byte header");
  std::remove(path.c_str());
}

TEST(TokenShardErrors, TruncatedData) {
  const std::string path = temp_path("truncated.bin");
  std::vector<uint8_t> bytes = valid_shard_bytes(path);
  bytes.pop_back();
  write_bytes(path, bytes);
  expect_read_error(path, "truncated");
  std::remove(path.c_str());
}

TEST(TokenShardErrors, TrailingBytes) {
  const std::string path = temp_path("trailing.bin");
  std::vector<uint8_t> bytes = valid_shard_bytes(path);
  bytes.push_back(0);
  write_bytes(path, bytes);
  expect_read_error(path, "does not match header");
  std::remove(path.c_str());
}

TEST(TokenShardErrors, BadMagic) {
  const std::string path = temp_path("bad_magic.bin");
  std::vector<uint8_t> bytes = valid_shard_bytes(path);
  bytes[0] = 'X';
  write_bytes(path, bytes);
  expect_read_error(path, "bad magic");
  std::remove(path.c_str());
}

TEST(TokenShardErrors, BadVersion) {
  const std::string path = temp_path("bad_version.bin");
  std::vector<uint8_t> bytes = valid_shard_bytes(path);
  put_u32(bytes, 8, 2);
  write_bytes(path, bytes);
  expect_read_error(path, "unsupported token shard version 2");
  std::remove(path.c_str());
}

TEST(TokenShardErrors, BadTokenBytes) {
  const std::string path = temp_path("bad_token_bytes.bin");
  std::vector<uint8_t> bytes = valid_shard_bytes(path);
  put_u32(bytes, 12, 3);
  write_bytes(path, bytes);
  expect_read_error(path, "unsupported token_bytes 3");
  std::remove(path.c_str());
}

TEST(TokenShardErrors, UnknownFlags) {
  const std::string path = temp_path("bad_flags.bin");
  std::vector<uint8_t> bytes = valid_shard_bytes(path);
  put_u32(bytes, 20, 3);
  write_bytes(path, bytes);
  expect_read_error(path, "unknown flag bits");
  std::remove(path.c_str());
}

TEST(TokenShardErrors, TokenOutOfRangeNamesItsIndex) {
  const std::string path = temp_path("out_of_range.bin");
  std::vector<uint8_t> bytes = valid_shard_bytes(path);
  bytes[64 + 2 * 3] = 10;  // token 3 becomes 10 == vocab_size
  write_bytes(path, bytes);
  expect_read_error(path, "token 10 at index 3 is out of range (vocab_size 10)");
  std::remove(path.c_str());
}

TEST(TokenShardErrors, MaskValueNotZeroOrOne) {
  const std::string path = temp_path("bad_mask.bin");
  std::vector<uint8_t> bytes = valid_shard_bytes(path);
  bytes[bytes.size() - 2] = 2;  // mask of token 3
  write_bytes(path, bytes);
  expect_read_error(path, "mask value 2 at index 3 is not 0 or 1");
  std::remove(path.c_str());
}

TEST(TokenShardErrors, FewerThanTwoTokens) {
  const std::string path = temp_path("one_token.bin");
  std::vector<uint8_t> bytes = valid_shard_bytes(path);
  bytes[24] = 1;  // n_tokens = 1
  bytes.resize(64 + 2 + 1);
  bytes[66] = 1;  // its mask
  write_bytes(path, bytes);
  expect_read_error(path, "at least 2");
  std::remove(path.c_str());
}

TEST(TokenShardWriter, RefusesUint16ForLargeTokens) {
  const std::string path = temp_path("too_wide.bin");
  expect_error([&] { write_token_shard(path, {1, 65536, 2}, 100000, nullptr, 2); }, path,
               "token 65536 at index 1 does not fit in token_bytes 2");
  write_token_shard(path, {1, 65535, 2}, 100000, nullptr, 2);  // the largest that fits
  EXPECT_EQ(read_token_shard(path).tokens[1], 65535u);
  std::remove(path.c_str());
}

TEST(TokenShardWriter, RefusesInvalidInput) {
  const std::string path = temp_path("invalid.bin");
  const std::vector<uint8_t> short_mask = {1};
  const std::vector<uint8_t> bad_mask = {1, 7};
  expect_error([&] { write_token_shard(path, {1, 2}, 10, nullptr, 3); }, path,
               "unsupported token_bytes 3");
  expect_error([&] { write_token_shard(path, {1, 12}, 10, nullptr, 4); }, path,
               "token 12 at index 1 is out of range");
  expect_error([&] { write_token_shard(path, {1}, 10, nullptr, 4); }, path, "at least 2");
  expect_error([&] { write_token_shard(path, {1, 2}, 10, &short_mask, 4); }, path,
               "mask has 1 values for 2 tokens");
  expect_error([&] { write_token_shard(path, {1, 2}, 10, &bad_mask, 4); }, path,
               "mask value 7 at index 1");
  std::remove(path.c_str());
}

}  // namespace
}  // namespace lora
