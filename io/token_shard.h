// Token shards: the on-disk form of a tokenized training or validation set.
//
// File format, version 1 (all integers little-endian):
//
//   offset  size  field
//   0       8     magic, the ASCII bytes "LDTOKENS" (no terminator)
//   8       4     uint32 version = 1
//   12      4     uint32 token_bytes: 2 (tokens stored as uint16) or 4 (uint32)
//   16      4     uint32 vocab_size: every token is < vocab_size
//   20      4     uint32 flags: bit 0 = a loss mask follows the tokens; other bits must be 0
//   24      8     uint64 n_tokens (at least 2: one input and one target)
//   32      32    zero padding, so the header is 64 bytes
//   64            n_tokens tokens, token_bytes each
//   then, only if flags bit 0: n_tokens uint8 mask values, one per token:
//                 1 = the token is a target whose prediction counts in the loss,
//                 0 = a prompt token, excluded from the loss (the LoRA paper's
//                     conditional objective: only the answer is scored).
//
// The file size must be exactly 64 + n_tokens * (token_bytes + has_mask). A shard
// without a mask scores every token.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace lora {

struct TokenShard {
  std::string path;             // where it was read from, for messages
  uint32_t vocab_size = 0;
  std::vector<uint32_t> tokens;
  std::vector<uint8_t> mask;    // one 0/1 per token; empty if the shard has none

  bool has_mask() const { return !mask.empty(); }
  size_t size() const { return tokens.size(); }
};

// Reads and validates a whole shard. Every problem (missing file, wrong magic,
// unsupported version or token_bytes, unknown flags, a size that does not match
// the header, fewer than 2 tokens, a token >= vocab_size, a mask value other
// than 0/1) throws InputError (io/input_error.h) whose message starts with `path`.
TokenShard read_token_shard(const std::string& path);

// Writes a shard in the format above. `mask` may be null (no mask); otherwise it
// must hold one 0/1 value per token. `token_bytes` is 2 or 4; 2 is refused when
// a token does not fit in uint16. Throws std::runtime_error starting with `path`
// on invalid input or a failed write, so it never writes a file the reader
// would reject.
void write_token_shard(const std::string& path, const std::vector<uint32_t>& tokens,
                       uint32_t vocab_size, const std::vector<uint8_t>* mask,
                       int token_bytes);

}  // namespace lora
