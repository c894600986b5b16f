// What a model folder's tokenizer_config.json (Hugging Face transformers) says beside the
// tokenizer itself: the names of its beginning/end-of-sequence tokens, whether a sequence starts
// with the BOS, and the chat template. Every key is optional; the file itself too.
#pragma once
#include <optional>
#include <string>

namespace lora {

struct TokenizerConfig {
  std::string path;                        // DIR/tokenizer_config.json ("" when the folder has none)
  std::optional<std::string> bos_token, eos_token;
  std::optional<bool> add_bos_token;
  std::optional<std::string> chat_template;  // the "default" one where several are named
};

// Throws InputError naming the file and key for a file that is not a JSON object, a token that
// is neither a string nor {"content": string}, a non-boolean add_bos_token, a chat_template that
// is neither a string nor a list of {"name", "template"}.
TokenizerConfig read_tokenizer_config(const std::string& dir);

}  // namespace lora
