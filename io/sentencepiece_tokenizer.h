// A SentencePiece tokenizer.model (Llama 2, Mistral), through the sentencepiece library
// (Debian: libsentencepiece-dev). Text is encoded as SentencePiece does it (normalization,
// the leading "▁" of add_dummy_prefix, byte fallback where the model has it); the text of a
// control token (<s>, </s>) or, in encode_with_special, of any control or user-defined piece,
// becomes that token, as Hugging Face's LlamaTokenizer splits it out before calling
// SentencePiece on the text around it. bos() is the model's <s> unless tokenizer_config.json
// says add_bos_token false; eos() is its </s> (or the config's eos_token).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "io/tokenizer.h"
#include "io/tokenizer_config.h"

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace lora {

class SentencePieceTokenizer : public Tokenizer {
 public:
  // Throws InputError naming the file: missing, or not a SentencePiece model (with the
  // library's reason); naming tokenizer_config.json's key eos_token when it is not a piece.
  SentencePieceTokenizer(const std::string& model_path, const TokenizerConfig& config);
  ~SentencePieceTokenizer() override;

  std::vector<uint32_t> encode(std::string_view text) const override;
  TokenOffsets encode_with_offsets(std::string_view text) const override;
  std::string decode(const std::vector<uint32_t>& ids) const override;
  uint32_t vocab_size() const override;
  uint32_t eos() const override { return eos_; }
  std::optional<uint32_t> bos() const override { return bos_; }
  std::optional<uint32_t> special_token_id(std::string_view text) const override;
  std::string describe() const override;

 private:
  void encode_text(std::string_view text, size_t base, TokenOffsets& out) const;

  std::string path_;
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
  std::vector<std::pair<std::string, uint32_t>> special_;  // control and user-defined pieces, longest first
  std::optional<uint32_t> bos_;
  uint32_t eos_ = 0;
};

}  // namespace lora
