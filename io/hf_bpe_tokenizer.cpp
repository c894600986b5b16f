#include "io/hf_bpe_tokenizer.h"

#include <utf8proc.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <limits>
#include <queue>
#include <sstream>
#include <stdexcept>

#include "io/byte_level_alphabet.h"
#include "io/input_error.h"
#include "io/json_preview.h"

namespace lora {

namespace {

constexpr uintmax_t kMaxTokenizerJsonBytes = 512u << 20;  // Llama 3's tokenizer.json is 9 MB, Qwen's 11 MB

nlohmann::json read_json(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) throw InputError(path + ": not found");
  if (std::filesystem::file_size(path, ec) > kMaxTokenizerJsonBytes)
    throw InputError(path + ": larger than any tokenizer file (limit " + std::to_string(kMaxTokenizerJsonBytes) + " bytes)");
  try {
    return nlohmann::json::parse(std::ifstream(path, std::ios::binary));
  } catch (const nlohmann::json::exception& e) {
    throw InputError(path + ": not valid JSON: " + e.what());
  }
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

uint64_t pair_key(uint32_t a, uint32_t b) { return (uint64_t(a) << 32) | b; }

}  // namespace

HfBpeTokenizer::HfBpeTokenizer(const std::string& tokenizer_json, const TokenizerConfig& config) : file_(tokenizer_json) {
  const nlohmann::json j = read_json(tokenizer_json);
  if (!j.is_object()) throw InputError(file_ + ": expected a JSON object (got " + json_preview(j) + ")");
  if (!j.contains("model") || !j["model"].is_object()) throw InputError(file_ + ": key model: missing (or not an object)");
  read_model(j["model"]);
  read_added_tokens(j.contains("added_tokens") ? j["added_tokens"] : nlohmann::json::array());
  normalizer_ = std::make_unique<TokenizerJsonNormalizer>(j.value("normalizer", nlohmann::json()), file_);
  pretokenizer_ = std::make_unique<TokenizerJsonPretokenizer>(j.value("pre_tokenizer", nlohmann::json()), file_);
  decoder_ = std::make_unique<TokenizerJsonDecoder>(j.value("decoder", nlohmann::json()), file_);
  if (j.contains("post_processor") && !j["post_processor"].is_null()) read_post_processor(j["post_processor"], "post_processor");
  if (pretokenizer_->byte_level()) {
    const ByteLevelAlphabet& alphabet = ByteLevelAlphabet::get();
    for (int b = 0; b < 256; ++b)
      if (!vocab_.count(alphabet.symbol[b]))
        throw InputError(file_ + ": key model.vocab: no symbol for byte " + std::to_string(b) + " (" +
                         nlohmann::json(alphabet.symbol[b]).dump() + "); a byte-level vocabulary has all 256");
  }
  find_eos(config);
}

void HfBpeTokenizer::read_model(const nlohmann::json& m) {
  const std::string type = m.contains("type") && m["type"].is_string() ? m["type"].get<std::string>() : "BPE";
  if (type != "BPE")
    throw InputError(file_ + ": key model.type: \"" + type + "\" is not supported; lora_dist reads BPE tokenizer.json files "
                     "(byte-level as Llama 3 and Qwen, or with byte_fallback as Llama 2)");
  auto flag = [&](const char* k) {
    if (!m.contains(k) || m[k].is_null()) return false;
    if (!m[k].is_boolean()) throw InputError(file_ + ": key model." + k + ": expected true or false (got " + json_preview(m[k]) + ")");
    return m[k].get<bool>();
  };
  byte_fallback_ = flag("byte_fallback");
  ignore_merges_ = flag("ignore_merges");
  fuse_unk_ = flag("fuse_unk");
  if (m.contains("dropout") && !m["dropout"].is_null() && !(m["dropout"].is_number() && m["dropout"].get<double>() == 0))
    throw InputError(file_ + ": key model.dropout: BPE dropout (" + json_preview(m["dropout"]) + ") is for training a tokenizer; expected null");
  for (const char* k : {"continuing_subword_prefix", "end_of_word_suffix"})
    if (m.contains(k) && !m[k].is_null() && !(m[k].is_string() && m[k].get<std::string>().empty()))
      throw InputError(file_ + ": key model." + k + ": " + json_preview(m[k]) + " is not supported (expected null or \"\")");

  if (!m.contains("vocab") || !m["vocab"].is_object()) throw InputError(file_ + ": key model.vocab: missing (or not an object {symbol: id})");
  for (const auto& [symbol, id] : m["vocab"].items()) {
    if (!id.is_number_unsigned() || id.get<uint64_t>() >= uint64_t(std::numeric_limits<int32_t>::max()))
      throw InputError(file_ + ": key model.vocab: symbol " + nlohmann::json(symbol).dump() + " has id " + json_preview(id) +
                       "; ids are integers in [0, 2^31)");
    const auto i = id.get<uint32_t>();
    if (i >= token_text_.size()) token_text_.resize(i + 1);
    if (!token_text_[i].empty())
      throw InputError(file_ + ": key model.vocab: id " + std::to_string(i) + " is given to both " +
                       nlohmann::json(token_text_[i]).dump() + " and " + nlohmann::json(symbol).dump());
    if (symbol.empty()) throw InputError(file_ + ": key model.vocab: an empty symbol (id " + std::to_string(i) + ")");
    token_text_[i] = symbol;
    vocab_[symbol] = i;
  }
  if (m.contains("unk_token") && m["unk_token"].is_string()) {
    const std::string unk = m["unk_token"].get<std::string>();
    if (!vocab_.count(unk)) throw InputError(file_ + ": key model.unk_token: " + nlohmann::json(unk).dump() + " is not in model.vocab");
    unk_ = vocab_.at(unk);
  }
  if (byte_fallback_) {
    char name[8];
    for (int b = 0; b < 256; ++b) {
      std::snprintf(name, sizeof name, "<0x%02X>", b);
      if (!vocab_.count(name))
        throw InputError(file_ + ": key model.byte_fallback is true but model.vocab has no \"" + name + "\"");
      byte_token_[b] = vocab_.at(name);
    }
  }

  if (!m.contains("merges") || !m["merges"].is_array())
    throw InputError(file_ + ": key model.merges: missing (or not a list of \"a b\" / [\"a\", \"b\"] merges)");
  const nlohmann::json& merges = m["merges"];
  merges_.reserve(merges.size());
  for (size_t r = 0; r < merges.size(); ++r) {
    const nlohmann::json& e = merges[r];
    const std::string where = file_ + ": key model.merges[" + std::to_string(r) + "]";
    std::string a, b;
    if (e.is_string()) {  // "a b": the older form, symbols without spaces
      const std::string s = e.get<std::string>();
      const size_t sp = s.find(' ');
      if (sp == 0 || sp == std::string::npos || sp + 1 == s.size() || s.find(' ', sp + 1) != std::string::npos)
        throw InputError(where + ": expected two symbols separated by one space (got " + nlohmann::json(s).dump() + ")");
      a = s.substr(0, sp), b = s.substr(sp + 1);
    } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {  // ["a", "b"]
      a = e[0].get<std::string>(), b = e[1].get<std::string>();
    } else {
      throw InputError(where + ": expected \"a b\" or [\"a\", \"b\"] (got " + json_preview(e) + ")");
    }
    for (const std::string& s : {a, b, a + b})
      if (!vocab_.count(s)) throw InputError(where + ": symbol " + nlohmann::json(s).dump() + " is not in model.vocab");
    // A pair listed twice keeps its first rank, as the tokenizers library does.
    merges_.emplace(pair_key(vocab_.at(a), vocab_.at(b)), std::make_pair(static_cast<int>(r), vocab_.at(a + b)));
  }
}

void HfBpeTokenizer::read_added_tokens(const nlohmann::json& list) {
  if (!list.is_array()) throw InputError(file_ + ": key added_tokens: expected a list (got " + json_preview(list) + ")");
  for (size_t i = 0; i < list.size(); ++i) {
    const nlohmann::json& t = list[i];
    const std::string where = file_ + ": key added_tokens[" + std::to_string(i) + "]";
    if (!t.is_object() || !t.contains("id") || !t["id"].is_number_unsigned() || !t.contains("content") ||
        !t["content"].is_string() || t["content"].get<std::string>().empty() ||
        t["id"].get<uint64_t>() >= uint64_t(std::numeric_limits<int32_t>::max()))
      throw InputError(where + ": expected {\"id\": integer, \"content\": non-empty string, ...}");
    auto flag = [&](const char* k) { return t.contains(k) && t[k].is_boolean() && t[k].get<bool>(); };
    if (flag("single_word")) throw InputError(where + ".single_word: true is not supported");
    AddedToken a{t["id"].get<uint32_t>(), t["content"].get<std::string>(), flag("special"), flag("lstrip"), flag("rstrip")};
    if (a.id >= token_text_.size()) token_text_.resize(a.id + 1);
    token_text_[a.id] = a.content;
    added_ids_[a.content] = a.id;
    added_first_byte_[static_cast<unsigned char>(a.content[0])] = true;
    added_.push_back(std::move(a));
  }
  std::stable_sort(added_.begin(), added_.end(),
                   [](const AddedToken& x, const AddedToken& y) { return x.content.size() > y.content.size(); });
}

void HfBpeTokenizer::read_post_processor(const nlohmann::json& spec, const std::string& key) {
  const std::string where = file_ + ": key " + key;
  const std::string type = spec.is_object() && spec.contains("type") && spec["type"].is_string() ? spec["type"].get<std::string>() : "";
  if (type == "ByteLevel") return;  // offsets only
  if (type == "Sequence" && spec.contains("processors") && spec["processors"].is_array()) {
    for (size_t i = 0; i < spec["processors"].size(); ++i)
      read_post_processor(spec["processors"][i], key + ".processors[" + std::to_string(i) + "]");
    return;
  }
  if (type != "TemplateProcessing")
    throw InputError(where + ".type: post-processor " + json_preview(spec.is_object() ? spec.value("type", nlohmann::json()) : spec) +
                     " is not supported (supported: TemplateProcessing, ByteLevel, Sequence)");
  if (!spec.contains("single") || !spec["single"].is_array()) throw InputError(where + ".single: expected a list");
  std::vector<uint32_t> leading;
  for (const auto& piece : spec["single"]) {
    if (piece.contains("Sequence")) break;
    if (!piece.contains("SpecialToken") || !piece["SpecialToken"].contains("id") || !piece["SpecialToken"]["id"].is_string())
      throw InputError(where + ".single: expected {\"SpecialToken\": {\"id\": name}} or {\"Sequence\": ...} items");
    const std::string name = piece["SpecialToken"]["id"].get<std::string>();
    const nlohmann::json* ids = nullptr;
    if (spec.contains("special_tokens") && spec["special_tokens"].contains(name) && spec["special_tokens"][name].contains("ids"))
      ids = &spec["special_tokens"][name]["ids"];
    if (!ids || !ids->is_array()) throw InputError(where + ".special_tokens: no ids for " + nlohmann::json(name).dump());
    for (const auto& id : *ids) {
      if (!id.is_number_unsigned() || id.get<uint64_t>() >= token_text_.size())
        throw InputError(where + ".special_tokens." + name + ".ids: " + json_preview(id) + " is not a token id of this file");
      leading.push_back(id.get<uint32_t>());
    }
  }
  if (leading.size() > 1)
    throw InputError(where + ".single: " + std::to_string(leading.size()) + " tokens before the sequence; lora_dist supports one (a BOS)");
  if (!leading.empty()) bos_ = leading[0];
}

void HfBpeTokenizer::find_eos(const TokenizerConfig& config) {
  if (config.eos_token) {
    const auto id = special_token_id(*config.eos_token);
    const auto it = vocab_.find(*config.eos_token);
    if (!id && it == vocab_.end())
      throw InputError(config.path + ": key eos_token: " + nlohmann::json(*config.eos_token).dump() + " is not a token of " + file_);
    eos_ = id ? *id : it->second;
    return;
  }
  // No tokenizer_config.json: the usual names, as the model families spell them.
  for (const char* name : {"</s>", "<|endoftext|>", "<|end_of_text|>", "<|im_end|>", "<eos>"})
    if (auto id = special_token_id(name)) {
      eos_ = *id;
      return;
    }
  throw InputError(file_ + ": no end-of-sequence token: no tokenizer_config.json with \"eos_token\" beside it, and none of "
                   "</s>, <|endoftext|>, <|end_of_text|>, <|im_end|>, <eos> among added_tokens");
}

std::optional<uint32_t> HfBpeTokenizer::special_token_id(std::string_view text) const {
  const auto it = added_ids_.find(std::string(text));
  if (it == added_ids_.end()) return std::nullopt;
  return it->second;
}

std::string HfBpeTokenizer::describe() const {
  return file_ + " (Hugging Face BPE, " + std::to_string(vocab_size()) + " ids)";
}

std::vector<uint32_t> HfBpeTokenizer::encode(std::string_view text) const { return encode_impl(text, false).ids; }

TokenOffsets HfBpeTokenizer::encode_with_offsets(std::string_view text) const { return encode_impl(text, true); }

TokenOffsets HfBpeTokenizer::encode_impl(std::string_view text, bool with_special) const {
  check_utf8(text);
  TokenOffsets out;
  size_t stretch = 0;  // where the text since the last added token starts
  for (size_t i = 0; i < text.size();) {
    const AddedToken* found = nullptr;
    if (added_first_byte_[static_cast<unsigned char>(text[i])])
      for (const AddedToken& a : added_)  // longest first
      if ((with_special || !a.special) && text.compare(i, a.content.size(), a.content) == 0) {
        found = &a;
        break;
      }
    if (!found) {
      ++i;
      continue;
    }
    size_t start = i, end = i + found->content.size();
    if (found->lstrip)
      while (start > stretch && is_space(text[start - 1])) --start;
    if (found->rstrip)
      while (end < text.size() && is_space(text[end])) ++end;
    encode_stretch(text.substr(stretch, start - stretch), stretch, out);
    out.ids.push_back(found->id);
    out.starts.push_back(start);
    stretch = i = end;
  }
  encode_stretch(text.substr(stretch), stretch, out);
  return out;
}

void HfBpeTokenizer::encode_stretch(std::string_view text, size_t base, TokenOffsets& out) const {
  if (text.empty()) return;
  const AlignedText normalized = normalizer_->apply(AlignedText::identity(text, base));
  for (const AlignedText& piece : pretokenizer_->split(normalized, base == 0)) {
    for (auto [id, at] : bpe(piece.text)) {
      out.ids.push_back(id);
      out.starts.push_back(piece.origin[at]);
    }
  }
}

void HfBpeTokenizer::symbols_of(const std::string& piece, std::vector<std::pair<uint32_t, uint32_t>>& out) const {
  bool last_unk = false;
  for (size_t i = 0; i < piece.size();) {
    const auto c = static_cast<unsigned char>(piece[i]);
    const size_t n = std::min(piece.size() - i, size_t(c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4));
    const auto it = vocab_.find(piece.substr(i, n));
    if (it != vocab_.end()) {
      out.emplace_back(it->second, static_cast<uint32_t>(i));
      last_unk = false;
    } else if (byte_fallback_) {
      for (size_t k = 0; k < n; ++k) out.emplace_back(byte_token_[static_cast<unsigned char>(piece[i + k])], static_cast<uint32_t>(i + k));
      last_unk = false;
    } else if (unk_) {
      if (!(fuse_unk_ && last_unk)) out.emplace_back(*unk_, static_cast<uint32_t>(i));
      last_unk = true;
    } else {
      throw std::invalid_argument("the character " + nlohmann::json(piece.substr(i, n)).dump() + " has no symbol in " + file_ +
                                  ", which has neither byte_fallback nor an unk_token");
    }
    i += n;
  }
}

std::vector<std::pair<uint32_t, uint32_t>> HfBpeTokenizer::bpe(const std::string& piece) const {
  if (auto it = cache_.find(piece); it != cache_.end()) return it->second;
  std::vector<std::pair<uint32_t, uint32_t>> result;
  if (const auto it = vocab_.find(piece); ignore_merges_ && it != vocab_.end()) {
    result.emplace_back(it->second, 0);
  } else {
    // The word as a linked list of symbols; candidate merges in a heap by (rank, position), as
    // the tokenizers library does: stale candidates (a side already merged away) are skipped.
    struct Symbol {
      uint32_t id, at;
      int prev, next;
      bool alive;
    };
    std::vector<std::pair<uint32_t, uint32_t>> initial;
    symbols_of(piece, initial);
    std::vector<Symbol> w;
    for (size_t i = 0; i < initial.size(); ++i)
      w.push_back({initial[i].first, initial[i].second, int(i) - 1, i + 1 < initial.size() ? int(i) + 1 : -1, true});
    struct Candidate {
      int rank, pos;
      uint32_t merged;
      bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
    };
    std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> heap;
    auto consider = [&](int pos) {
      if (pos < 0 || w[pos].next < 0) return;
      const auto m = merges_.find(pair_key(w[pos].id, w[w[pos].next].id));
      if (m != merges_.end()) heap.push({m->second.first, pos, m->second.second});
    };
    for (int i = 0; i + 1 < int(w.size()); ++i) consider(i);
    while (!heap.empty()) {
      const Candidate c = heap.top();
      heap.pop();
      Symbol& left = w[c.pos];
      if (!left.alive || left.next < 0) continue;
      const auto m = merges_.find(pair_key(left.id, w[left.next].id));
      if (m == merges_.end() || m->second.second != c.merged) continue;
      Symbol& right = w[left.next];
      left.id = c.merged;
      right.alive = false;
      left.next = right.next;
      if (right.next >= 0) w[right.next].prev = c.pos;
      consider(left.prev);
      consider(c.pos);
    }
    for (const Symbol& s : w)
      if (s.alive) result.emplace_back(s.id, s.at);
  }
  if (piece.size() <= 256) {  // words recur; a whole paragraph (no pre-tokenizer) hardly does
    if (cache_.size() > 100000) cache_.clear();
    cache_.emplace(piece, result);
  }
  return result;
}

std::string HfBpeTokenizer::decode(const std::vector<uint32_t>& ids) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (uint32_t id : ids) {
    if (id >= token_text_.size() || token_text_[id].empty())
      throw std::out_of_range("token id " + std::to_string(id) + " is not in " + file_);
    tokens.push_back(token_text_[id]);
  }
  return decoder_->decode(std::move(tokens));
}

}  // namespace lora
