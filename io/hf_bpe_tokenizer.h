// A Hugging Face tokenizer.json whose model is BPE (Llama 3, Qwen2/2.5/3, Llama 2, Mistral),
// encoding as the tokenizers library does:
//   1. added tokens ("added_tokens") are found first, on the text as written, leftmost and
//      longest first; the text between them goes on alone (the special ones only for
//      encode_with_special: encode() treats their text as text);
//   2. each stretch is normalized (io/tokenizer_json_normalizer.h) and cut into pieces
//      (io/tokenizer_json_pretokenizer.h);
//   3. BPE within each piece: the piece's characters as vocabulary symbols (with byte_fallback,
//      a character with no symbol becomes its "<0xNN>" byte tokens; else unk_token), then the
//      adjacent pair of lowest merge rank merged, leftmost first, until no pair has a rank;
//      with ignore_merges, a piece that is itself a symbol is that one token.
// Decoding goes through the file's decoder (io/tokenizer_json_decoder.h).
// The post_processor is not applied by encode: bos() is the token its TemplateProcessing puts
// before the sequence (Llama 2's <s>; Llama 3's <|begin_of_text|> where the file says so), null
// where it puts none (ByteLevel, Qwen's). The end-of-sequence token is tokenizer_config.json's
// eos_token when the folder has one (io/tokenizer_config.h).
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "io/tokenizer.h"
#include "io/tokenizer_config.h"
#include "io/tokenizer_json_decoder.h"
#include "io/tokenizer_json_normalizer.h"
#include "io/tokenizer_json_pretokenizer.h"

namespace lora {

class HfBpeTokenizer : public Tokenizer {
 public:
  // Throws InputError naming the file and key: not JSON, model.type other than "BPE", missing
  // or malformed model.vocab / model.merges, a merge whose parts or result are not in the
  // vocabulary, an unsupported normalizer / pre-tokenizer / decoder / post-processor, a
  // byte-level file whose vocabulary misses a byte, no end-of-sequence token to be found.
  HfBpeTokenizer(const std::string& tokenizer_json, const TokenizerConfig& config);

  std::vector<uint32_t> encode(std::string_view text) const override;
  TokenOffsets encode_with_offsets(std::string_view text) const override;
  std::string decode(const std::vector<uint32_t>& ids) const override;
  uint32_t vocab_size() const override { return static_cast<uint32_t>(token_text_.size()); }
  uint32_t eos() const override { return eos_; }
  std::optional<uint32_t> bos() const override { return bos_; }
  std::optional<uint32_t> special_token_id(std::string_view text) const override;
  std::string describe() const override;

 private:
  struct AddedToken {
    uint32_t id;
    std::string content;
    bool special, lstrip, rstrip;
  };
  void read_model(const nlohmann::json& model);
  void read_added_tokens(const nlohmann::json& list);
  void read_post_processor(const nlohmann::json& spec, const std::string& key);
  void find_eos(const TokenizerConfig& config);
  TokenOffsets encode_impl(std::string_view text, bool with_special) const;
  // Appends the tokens of one stretch without added tokens, starting at byte `base` of the input.
  void encode_stretch(std::string_view text, size_t base, TokenOffsets& out) const;
  // BPE of one piece: (id, byte offset in the piece) of each token.
  std::vector<std::pair<uint32_t, uint32_t>> bpe(const std::string& piece) const;
  void symbols_of(const std::string& piece, std::vector<std::pair<uint32_t, uint32_t>>& out) const;

  std::string file_;
  std::unordered_map<std::string, uint32_t> vocab_;      // model.vocab: symbol -> id
  std::vector<std::string> token_text_;                   // id -> the model's symbol or the added token's text
  std::unordered_map<uint64_t, std::pair<int, uint32_t>> merges_;  // (left id, right id) -> (rank, merged id)
  std::vector<AddedToken> added_;                         // longest first
  std::unordered_map<std::string, uint32_t> added_ids_;
  bool added_first_byte_[256] = {};                       // some added token starts with this byte
  bool byte_fallback_ = false, ignore_merges_ = false, fuse_unk_ = false;
  std::optional<uint32_t> unk_, bos_;
  uint32_t eos_ = 0;
  uint32_t byte_token_[256] = {};  // byte_fallback: "<0xNN>" ids
  std::unique_ptr<TokenizerJsonNormalizer> normalizer_;
  std::unique_ptr<TokenizerJsonPretokenizer> pretokenizer_;
  std::unique_ptr<TokenizerJsonDecoder> decoder_;
  mutable std::unordered_map<std::string, std::vector<std::pair<uint32_t, uint32_t>>> cache_;
};

}  // namespace lora
