#include "io/tokenizer.h"

#include <utf8proc.h>

#include <filesystem>
#include <stdexcept>

#include "io/gpt2_tokenizer.h"
#include "io/hf_bpe_tokenizer.h"
#include "io/input_error.h"
#include "io/sentencepiece_tokenizer.h"
#include "io/tokenizer_config.h"

namespace lora {

namespace {

// GPT-2's tokenizer (io/gpt2_tokenizer.h) as a Tokenizer: no BOS, <|endoftext|> ends a text.
class Gpt2FolderTokenizer : public Tokenizer {
 public:
  explicit Gpt2FolderTokenizer(const std::string& dir) : dir_(dir), tok_(Gpt2Tokenizer::from_folder(dir)) {}

  std::vector<uint32_t> encode(std::string_view text) const override { return tok_->encode(text); }
  // Byte-level tokens are the text's bytes in order, so each starts where the previous ends.
  TokenOffsets encode_with_offsets(std::string_view text) const override {
    TokenOffsets out;
    out.ids = tok_->encode_with_special(text);
    size_t at = 0;
    for (uint32_t id : out.ids) {
      out.starts.push_back(at);
      at += tok_->decode({id}).size();
    }
    return out;
  }
  std::string decode(const std::vector<uint32_t>& ids) const override { return tok_->decode(ids); }
  uint32_t vocab_size() const override { return tok_->vocab_size(); }
  uint32_t eos() const override { return tok_->eot(); }
  std::optional<uint32_t> bos() const override { return std::nullopt; }
  std::optional<uint32_t> special_token_id(std::string_view text) const override {
    if (text == "<|endoftext|>") return tok_->eot();
    return std::nullopt;
  }
  std::string describe() const override {
    return dir_ + " (GPT-2 vocab.json + merges.txt, " + std::to_string(tok_->vocab_size()) + " ids)";
  }

 private:
  std::string dir_;
  std::unique_ptr<Gpt2Tokenizer> tok_;
};

bool is_file(const std::filesystem::path& p) {
  std::error_code ec;
  return std::filesystem::is_regular_file(p, ec);
}

}  // namespace

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& dir) {
  const std::filesystem::path d(dir);
  std::error_code ec;
  if (!std::filesystem::is_directory(d, ec)) throw InputError(dir + ": not a folder (expected a model folder with a tokenizer)");
  if (is_file(d / "tokenizer.json"))
    return std::make_unique<HfBpeTokenizer>((d / "tokenizer.json").string(), read_tokenizer_config(dir));
  if (is_file(d / "tokenizer.model"))
    return std::make_unique<SentencePieceTokenizer>((d / "tokenizer.model").string(), read_tokenizer_config(dir));
  if (is_file(d / "vocab.json") || is_file(d / "merges.txt")) return std::make_unique<Gpt2FolderTokenizer>(dir);
  throw InputError(dir + ": no tokenizer in this folder: expected tokenizer.json (Hugging Face), tokenizer.model "
                   "(SentencePiece) or vocab.json + merges.txt (GPT-2)");
}

void check_utf8(std::string_view text) {
  const auto* p = reinterpret_cast<const utf8proc_uint8_t*>(text.data());
  for (size_t i = 0; i < text.size();) {
    utf8proc_int32_t cp = 0;
    const utf8proc_ssize_t n = utf8proc_iterate(p + i, static_cast<utf8proc_ssize_t>(text.size() - i), &cp);
    if (n <= 0) throw std::invalid_argument("not valid UTF-8 at byte " + std::to_string(i));
    i += static_cast<size_t>(n);
  }
}

}  // namespace lora
