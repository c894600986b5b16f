// libFuzzer target: lora::read_token_shard on arbitrary bytes (io/token_shard.h).
// A std::exception is the reader's documented way to refuse a file; anything else --
// a crash, an ASan/UBSan report, an allocation past -rss_limit_mb, a -timeout -- is a finding.
#include <exception>

#include "io/token_shard.h"
#include "tests/fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& path = fuzz::put("token_shard", data, size);
  try {
    const lora::TokenShard shard = lora::read_token_shard(path);
    // What the reader promises once it returns (io/token_shard.h).
    if (shard.tokens.size() < 2) __builtin_trap();
    if (shard.has_mask() && shard.mask.size() != shard.tokens.size()) __builtin_trap();
    for (uint32_t t : shard.tokens)
      if (t >= shard.vocab_size) __builtin_trap();
    for (uint8_t m : shard.mask)
      if (m > 1) __builtin_trap();
  } catch (const std::exception&) {
  }
  return 0;
}
