#include "io/sentencepiece_tokenizer.h"

#include <sentencepiece_processor.h>

#include <algorithm>
#include <filesystem>
#include <stdexcept>

#include "io/input_error.h"

namespace lora {

SentencePieceTokenizer::SentencePieceTokenizer(const std::string& model_path, const TokenizerConfig& config)
    : path_(model_path), sp_(std::make_unique<sentencepiece::SentencePieceProcessor>()) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(model_path, ec)) throw InputError(model_path + ": not found");
  const auto status = sp_->Load(model_path);
  if (!status.ok()) throw InputError(model_path + ": not a SentencePiece model: " + status.ToString());
  if (sp_->GetPieceSize() <= 0) throw InputError(model_path + ": a SentencePiece model with no pieces");
  for (int id = 0; id < sp_->GetPieceSize(); ++id)
    if (sp_->IsControl(id) || sp_->IsUnknown(id)) special_.emplace_back(sp_->IdToPiece(id), static_cast<uint32_t>(id));
  std::stable_sort(special_.begin(), special_.end(), [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  if (sp_->bos_id() >= 0 && config.add_bos_token.value_or(true)) bos_ = static_cast<uint32_t>(sp_->bos_id());
  if (config.eos_token) {
    const int id = sp_->PieceToId(*config.eos_token);
    if (sp_->IsUnknown(id) && *config.eos_token != sp_->IdToPiece(id))
      throw InputError(config.path + ": key eos_token: \"" + *config.eos_token + "\" is not a piece of " + model_path);
    eos_ = static_cast<uint32_t>(id);
  } else if (sp_->eos_id() >= 0) {
    eos_ = static_cast<uint32_t>(sp_->eos_id());
  } else {
    throw InputError(model_path + ": the model has no end-of-sequence piece (eos_id -1) and no tokenizer_config.json names one");
  }
}

SentencePieceTokenizer::~SentencePieceTokenizer() = default;

uint32_t SentencePieceTokenizer::vocab_size() const { return static_cast<uint32_t>(sp_->GetPieceSize()); }

std::string SentencePieceTokenizer::describe() const {
  return path_ + " (SentencePiece, " + std::to_string(vocab_size()) + " ids)";
}

std::optional<uint32_t> SentencePieceTokenizer::special_token_id(std::string_view text) const {
  for (const auto& [piece, id] : special_)
    if (piece == text) return id;
  return std::nullopt;
}

void SentencePieceTokenizer::encode_text(std::string_view text, size_t base, TokenOffsets& out) const {
  if (text.empty()) return;
  const sentencepiece::ImmutableSentencePieceText spt = sp_->EncodeAsImmutableProto(text);
  for (const auto& piece : spt.pieces()) {
    out.ids.push_back(piece.id());
    out.starts.push_back(base + piece.begin());
  }
}

std::vector<uint32_t> SentencePieceTokenizer::encode(std::string_view text) const {
  check_utf8(text);
  TokenOffsets out;
  encode_text(text, 0, out);
  return out.ids;
}

TokenOffsets SentencePieceTokenizer::encode_with_offsets(std::string_view text) const {
  check_utf8(text);
  TokenOffsets out;
  size_t stretch = 0;
  for (size_t i = 0; i < text.size();) {
    const std::pair<std::string, uint32_t>* found = nullptr;
    for (const auto& s : special_)  // longest first
      if (text.compare(i, s.first.size(), s.first) == 0) {
        found = &s;
        break;
      }
    if (!found) {
      ++i;
      continue;
    }
    encode_text(text.substr(stretch, i - stretch), stretch, out);
    out.ids.push_back(found->second);
    out.starts.push_back(i);
    stretch = i = i + found->first.size();
  }
  encode_text(text.substr(stretch), stretch, out);
  return out;
}

std::string SentencePieceTokenizer::decode(const std::vector<uint32_t>& ids) const {
  std::vector<int> v;
  v.reserve(ids.size());
  for (uint32_t id : ids) {
    if (id >= vocab_size()) throw std::out_of_range("token id " + std::to_string(id) + " is not in " + path_);
    v.push_back(static_cast<int>(id));
  }
  std::string text;
  const auto status = sp_->Decode(v, &text);
  if (!status.ok()) throw std::out_of_range(path_ + ": cannot decode: " + status.ToString());
  return text;
}

}  // namespace lora
