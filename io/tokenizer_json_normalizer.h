// The "normalizer" of a Hugging Face tokenizer.json: what is done to text before it is cut
// into pieces. Supported types: NFC, NFD, NFKC, NFKD (Unicode normalization by utf8proc),
// Prepend (Llama 2: "▁" before the text), Replace with a String pattern (Llama 2: " " -> "▁"),
// Lowercase, and a Sequence of these; null for none.
//
// The text travels with, for each of its bytes, the byte of the original text it came from,
// so that every token can say where it starts in what the user wrote (io/tokenizer.h).
#pragma once
#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace lora {

// Text and, for each of its bytes, the offset of the original byte it stands for.
struct AlignedText {
  std::string text;
  std::vector<size_t> origin;

  // `s` unchanged: byte i stands for original byte base + i.
  static AlignedText identity(std::string_view s, size_t base);
};

class TokenizerJsonNormalizer {
 public:
  // `spec`: the "normalizer" value; `file`: tokenizer.json's path, for messages. Throws
  // InputError naming the file and key (normalizer.type, ...) for an unsupported or malformed one.
  TokenizerJsonNormalizer(const nlohmann::json& spec, const std::string& file);

  AlignedText apply(AlignedText t) const;
  bool empty() const { return steps_.empty(); }

 private:
  enum class Kind { Unicode, Prepend, Replace, Lowercase };
  struct Step {
    Kind kind;
    int utf8proc_options = 0;  // Unicode: which normalization form
    std::string a, b;          // Prepend: a; Replace: a -> b
  };
  void add(const nlohmann::json& spec, const std::string& file, const std::string& key);
  std::vector<Step> steps_;
};

}  // namespace lora
