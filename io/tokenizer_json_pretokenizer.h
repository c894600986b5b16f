// The "pre_tokenizer" of a Hugging Face tokenizer.json: how normalized text is cut into the
// pieces within which BPE merges. Supported types:
//   Split      a regular expression ({"Regex": ...}, compiled as written by PCRE2 in UTF and
//              Unicode-property mode: \p{L}, \p{N}, (?i:...) and look-ahead as Llama 3 and Qwen
//              write them) or a literal ({"String": ...}); behavior Isolated, Removed,
//              MergedWithPrevious, MergedWithNext or Contiguous; invert.
//   ByteLevel  GPT-2's: add_prefix_space, use_regex (GPT-2's own expression), then every byte of
//              a piece as its printable character (io/byte_level_alphabet.h).
//   Metaspace  SentencePiece's: " " -> replacement, prepend_scheme always/first/never, split.
//   Sequence   of these; null for none (the normalized text is one piece).
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "io/tokenizer_json_normalizer.h"

namespace lora {

class TokenizerJsonPretokenizer {
 public:
  // `spec`: the "pre_tokenizer" value; `file`: tokenizer.json's path, for messages. Throws
  // InputError naming the file and key for an unsupported type or a pattern PCRE2 refuses.
  TokenizerJsonPretokenizer(const nlohmann::json& spec, const std::string& file);
  ~TokenizerJsonPretokenizer();

  // The pieces of `text` (valid UTF-8), in order. `at_start`: `text` begins the input
  // (Metaspace's prepend_scheme "first").
  std::vector<AlignedText> split(AlignedText text, bool at_start) const;
  // Whether pieces come out in the byte-level alphabet (then every byte has a vocabulary symbol).
  bool byte_level() const { return byte_level_; }

 private:
  struct Step;
  void add(const nlohmann::json& spec, const std::string& file, const std::string& key);
  std::vector<std::unique_ptr<Step>> steps_;
  bool byte_level_ = false;
};

}  // namespace lora
