// The GPT-2 byte-level BPE tokenizer, from a model folder's vocab.json ({symbol: id}) and
// merges.txt ("#version" line, then one "a b" merge per line, by rank), as OpenAI's
// encoder.py: text -> UTF-8 bytes -> pieces of the pre-tokenizer (io/gpt2_pretokenizer.h)
// -> each byte as a printable character (bytes_to_unicode) -> the lowest-ranked adjacent
// pair merged until none is in merges.txt -> ids. Merge pairs are keyed by the two symbols
// (a pair, as Python's tuple), not by a joined string: "a,b" keys collide for symbols that
// contain commas (the npm gpt-3-encoder's bug).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "io/gpt2_pretokenizer.h"

namespace lora {

class Gpt2Tokenizer {
 public:
  // Throws InputError naming the file and, for merges.txt, the line: a file missing or not
  // JSON, an id that is not an integer in [0, 2^31) or is given twice, a merges line that is
  // not two symbols separated by one space, a merge whose parts or result are not in the
  // vocabulary, a byte with no symbol, no "<|endoftext|>".
  Gpt2Tokenizer(const std::string& vocab_json, const std::string& merges_txt);
  // DIR/vocab.json and DIR/merges.txt.
  static std::unique_ptr<Gpt2Tokenizer> from_folder(const std::string& dir);

  // `text` as ordinary text (as encoder.py: "<|endoftext|>" is five pieces of text).
  // Throws std::invalid_argument when `text` is not valid UTF-8.
  std::vector<uint32_t> encode(std::string_view text) const;
  // The same, with every "<|endoftext|>" in `text` becoming the end-of-text token.
  std::vector<uint32_t> encode_with_special(std::string_view text) const;
  // The bytes of `ids` (not necessarily valid UTF-8 when a character is cut). Throws
  // std::out_of_range for an id with no symbol.
  std::string decode(const std::vector<uint32_t>& ids) const;

  uint32_t eot() const { return eot_; }                   // "<|endoftext|>": 50256 in GPT-2
  uint32_t vocab_size() const { return vocab_size_; }     // 1 + the largest id
  int merges() const { return static_cast<int>(ranks_.size()); }

 private:
  void bpe(const std::string& piece, std::vector<uint32_t>& out) const;

  std::unordered_map<std::string, uint32_t> vocab_;  // symbol -> id
  std::vector<std::string> symbols_;                 // id -> symbol ("" where none)
  std::unordered_map<std::string, int> ranks_;       // "a b" -> rank (symbols never hold a space)
  std::string byte_symbol_[256];                     // byte -> its printable character, UTF-8
  std::unordered_map<uint32_t, uint8_t> symbol_byte_;  // code point -> byte
  uint32_t eot_ = 0, vocab_size_ = 0;
  Gpt2Pretokenizer pre_;
  mutable std::unordered_map<std::string, std::vector<uint32_t>> cache_;  // piece -> ids
};

}  // namespace lora
