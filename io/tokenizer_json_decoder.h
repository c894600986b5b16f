// The "decoder" of a Hugging Face tokenizer.json: token strings back to text. Supported types:
//   ByteLevel      each character of the byte-level alphabet back to its byte (a token with a
//                  character outside it, such as an added token's text, stays as it is)
//   Replace        a String pattern by its content (Llama 2: "▁" -> " ")
//   ByteFallback   "<0x41>"-style tokens to their bytes
//   Fuse           all tokens into one
//   Strip          up to `start` / `stop` copies of `content` off each token's ends
//   Metaspace      the replacement to " ", the first token's leading one dropped (unless the
//                  prepend_scheme is never)
//   Sequence       of these; null for none (the tokens joined).
// The result is bytes: a character cut between two tokens stays cut (Hugging Face would put
// U+FFFD there), so decoding a longer list extends the text of a shorter one.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace lora {

class TokenizerJsonDecoder {
 public:
  // `spec`: the "decoder" value; `file`: tokenizer.json's path, for messages. Throws InputError
  // naming the file and key for an unsupported or malformed one.
  TokenizerJsonDecoder(const nlohmann::json& spec, const std::string& file);

  std::string decode(std::vector<std::string> tokens) const;

 private:
  enum class Kind { ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace };
  struct Step {
    Kind kind;
    std::string a, b;   // Replace: a -> b; Strip: a = content; Metaspace: a = replacement
    int start = 0, stop = 0;
    bool prepend = true;  // Metaspace: drop the first token's leading replacement
  };
  void add(const nlohmann::json& spec, const std::string& file, const std::string& key);
  std::vector<Step> steps_;
};

}  // namespace lora
