// Text <-> token ids, whatever kind of tokenizer a model folder holds. load_tokenizer picks by
// the files it finds, in this order:
//   tokenizer.json             Hugging Face byte-level BPE (Llama 3, Qwen2/3, Llama 2's
//                              tokenizer.json): io/hf_bpe_tokenizer.h
//   tokenizer.model            SentencePiece (Llama 2, Mistral): io/sentencepiece_tokenizer.h
//   vocab.json + merges.txt    GPT-2's BPE: io/gpt2_tokenizer.h
// tokenizer_config.json beside them, where present, names the end-of-sequence token
// ("eos_token") and holds the chat template (io/chat_template.h).
//
// No encode here adds a beginning-of-sequence token: bos() says which one the model's own
// tokenizer would put first (Llama's <s>, Llama 3's <|begin_of_text|> where its tokenizer.json
// adds it), and the caller prepends it where a sequence starts.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lora {

// Token ids and, for each, the byte offset in the encoded text where the token's text starts
// (a token that a normalizer inserted, such as Llama 2's leading "▁", starts where the text
// it was inserted before starts).
struct TokenOffsets {
  std::vector<uint32_t> ids;
  std::vector<size_t> starts;
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // `text` as ordinary text: the text of a special token ("<|eot_id|>", "</s>") is encoded as
  // the characters it is made of. Throws std::invalid_argument when `text` is not valid UTF-8.
  virtual std::vector<uint32_t> encode(std::string_view text) const = 0;
  // The same, with the text of every special (and added) token becoming that token, as
  // Hugging Face's tokenizer(text, add_special_tokens=False) does.
  std::vector<uint32_t> encode_with_special(std::string_view text) const { return encode_with_offsets(text).ids; }
  // encode_with_special, with where each token starts in `text`.
  virtual TokenOffsets encode_with_offsets(std::string_view text) const = 0;
  // The bytes of `ids` (a character cut between two tokens is not replaced, so the text of a
  // longer list starts with the text of any of its prefixes). Throws std::out_of_range for an id
  // that is not in the vocabulary.
  virtual std::string decode(const std::vector<uint32_t>& ids) const = 0;

  virtual uint32_t vocab_size() const = 0;  // 1 + the largest id
  virtual uint32_t eos() const = 0;         // end of sequence / text: what generation stops at
  virtual std::optional<uint32_t> bos() const = 0;  // the token a sequence starts with, if any
  // The id of the token whose text is `text` when it is a special or added token (or, for
  // GPT-2, "<|endoftext|>"); nothing otherwise.
  virtual std::optional<uint32_t> special_token_id(std::string_view text) const = 0;
  // "tokenizer.json (Hugging Face BPE, 128256 ids)": for messages.
  virtual std::string describe() const = 0;
};

// The tokenizer of model folder `dir` (see the top of this file). Throws InputError naming the
// folder when it holds none of the three, or naming the file (and key) that is unusable.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& dir);

// Throws std::invalid_argument naming the byte offset where `text` stops being valid UTF-8
// (utf8proc's decoder): the tokenizers check their input with it before encoding.
void check_utf8(std::string_view text);

}  // namespace lora
