// GPT-2's pre-tokenizer: the regular expression that cuts text into the pieces BPE then
// merges within (contractions, optionally space-led runs of letters, of numbers, of other
// symbols, and whitespace runs that leave their last space to the next word):
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// compiled with PCRE2 in UTF + Unicode-property mode (\p{L}, \p{N} and \s by Unicode
// category, and the look-ahead that no hand-written matcher needs to get wrong).
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace lora {

class Gpt2Pretokenizer {
 public:
  Gpt2Pretokenizer();
  ~Gpt2Pretokenizer();
  Gpt2Pretokenizer(const Gpt2Pretokenizer&) = delete;
  Gpt2Pretokenizer& operator=(const Gpt2Pretokenizer&) = delete;

  // The pieces of `text`, in order; their concatenation is `text`. Throws
  // std::invalid_argument naming the byte offset when `text` is not valid UTF-8.
  std::vector<std::string_view> split(std::string_view text) const;

 private:
  struct Impl;
  Impl* impl_;
};

}  // namespace lora
