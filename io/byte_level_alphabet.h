// GPT-2's byte-level alphabet (bytes_to_unicode in OpenAI's encoder.py, ByteLevel in Hugging
// Face tokenizers): every byte stands for a printable character, so that a vocabulary of
// strings covers all byte sequences. Printable Latin-1 bytes stand for themselves; the others
// (controls, space, soft hyphen, ...) for U+0100, U+0101, ... in byte order.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <unordered_map>

namespace lora {

struct ByteLevelAlphabet {
  std::array<std::string, 256> symbol;            // byte -> its character, UTF-8
  std::unordered_map<uint32_t, uint8_t> byte_of;  // code point -> byte

  ByteLevelAlphabet() {
    for (uint32_t b = 0, n = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
      const uint32_t cp = printable ? b : 256 + n++;
      symbol[b] = cp < 0x80 ? std::string(1, static_cast<char>(cp))
                            : std::string{static_cast<char>(0xc0 | (cp >> 6)), static_cast<char>(0x80 | (cp & 0x3f))};
      byte_of[cp] = static_cast<uint8_t>(b);
    }
  }
  static const ByteLevelAlphabet& get() {
    static const ByteLevelAlphabet a;
    return a;
  }
};

}  // namespace lora
