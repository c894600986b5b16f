#include "io/gpt2_tokenizer.h"

#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "io/input_error.h"
#include "io/json_preview.h"

namespace lora {

namespace {

constexpr const char* kEndOfText = "<|endoftext|>";
constexpr uintmax_t kMaxFileBytes = 64u << 20;  // GPT-2's vocab.json is 1 MB, merges.txt 0.5 MB

std::string read_text(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) throw InputError(path + ": not found");
  if (std::filesystem::file_size(path, ec) > kMaxFileBytes)
    throw InputError(path + ": larger than any tokenizer file (limit " + std::to_string(kMaxFileBytes) + " bytes)");
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xc0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else {
    out += static_cast<char>(0xe0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  }
}

// The code points of valid UTF-8 `s` (JSON strings are valid UTF-8; nlohmann checks).
std::vector<uint32_t> code_points(const std::string& s) {
  std::vector<uint32_t> out;
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    const int n = c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
    uint32_t cp = n == 1 ? c : n == 2 ? (c & 0x1f) : n == 3 ? (c & 0x0f) : (c & 0x07);
    for (int k = 1; k < n && i + k < s.size(); ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3f);
    out.push_back(cp);
    i += n;
  }
  return out;
}

}  // namespace

Gpt2Tokenizer::Gpt2Tokenizer(const std::string& vocab_json, const std::string& merges_txt) {
  // bytes_to_unicode: printable Latin-1 bytes stand for themselves, the others (controls,
  // space, soft hyphen, ...) for 256, 257, ... in byte order, so every symbol is printable.
  for (uint32_t b = 0, n = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    const uint32_t cp = printable ? b : 256 + n++;
    append_utf8(byte_symbol_[b], cp);
    symbol_byte_[cp] = static_cast<uint8_t>(b);
  }

  nlohmann::json vocab;
  try {
    vocab = nlohmann::json::parse(read_text(vocab_json));
  } catch (const nlohmann::json::exception& e) {
    throw InputError(vocab_json + ": not valid JSON: " + e.what());
  }
  if (!vocab.is_object()) throw InputError(vocab_json + ": expected a JSON object {symbol: id} (got " + json_preview(vocab) + ")");
  for (const auto& [symbol, id] : vocab.items()) {
    if (!id.is_number_unsigned() || id.get<uint64_t>() >= uint64_t(std::numeric_limits<int32_t>::max()))
      throw InputError(vocab_json + ": symbol " + nlohmann::json(symbol).dump() + " has id " + json_preview(id) +
                       "; ids are integers in [0, 2^31)");
    const auto i = id.get<uint32_t>();
    if (i >= symbols_.size()) symbols_.resize(i + 1);
    if (!symbols_[i].empty())
      throw InputError(vocab_json + ": id " + std::to_string(i) + " is given to both " + nlohmann::json(symbols_[i]).dump() +
                       " and " + nlohmann::json(symbol).dump());
    for (uint32_t cp : code_points(symbol))
      if (!symbol_byte_.count(cp))
        throw InputError(vocab_json + ": symbol " + nlohmann::json(symbol).dump() +
                         " holds a character that stands for no byte (not a byte-level BPE vocabulary?)");
    if (symbol.empty()) throw InputError(vocab_json + ": an empty symbol (id " + std::to_string(i) + ")");
    symbols_[i] = symbol;
    vocab_[symbol] = i;
  }
  vocab_size_ = static_cast<uint32_t>(symbols_.size());
  for (int b = 0; b < 256; ++b)
    if (!vocab_.count(byte_symbol_[b]))
      throw InputError(vocab_json + ": no symbol for byte " + std::to_string(b) + " (" +
                       nlohmann::json(byte_symbol_[b]).dump() + "); a byte-level vocabulary has all 256");
  if (!vocab_.count(kEndOfText)) throw InputError(vocab_json + ": no \"<|endoftext|>\" symbol");
  eot_ = vocab_.at(kEndOfText);

  const std::string merges = read_text(merges_txt);
  std::istringstream lines(merges);
  std::string line;
  int lineno = 0, rank = 0;
  bool blank_seen = false;
  while (std::getline(lines, line)) {
    ++lineno;
    if (lineno == 1 && line.rfind("#version", 0) == 0) continue;
    if (line.empty()) {
      blank_seen = true;  // allowed at the end only
      continue;
    }
    const std::string where = merges_txt + ":" + std::to_string(lineno) + ": ";
    if (blank_seen) throw InputError(where + "a merge after an empty line (an empty line ends the merges)");
    const size_t sp = line.find(' ');
    if (sp == 0 || sp == std::string::npos || sp + 1 == line.size() || line.find(' ', sp + 1) != std::string::npos)
      throw InputError(where + "expected two symbols separated by one space (got " + nlohmann::json(line.substr(0, 60)).dump() + ")");
    const std::string a = line.substr(0, sp), b = line.substr(sp + 1);
    for (const std::string& s : {a, b, a + b})
      if (!vocab_.count(s))
        throw InputError(where + "symbol " + nlohmann::json(s).dump() + " is not in " + vocab_json);
    ranks_[line] = rank++;  // a pair listed twice keeps its later rank, as encoder.py's dict does
  }
}

std::unique_ptr<Gpt2Tokenizer> Gpt2Tokenizer::from_folder(const std::string& dir) {
  const std::filesystem::path d(dir);
  return std::make_unique<Gpt2Tokenizer>((d / "vocab.json").string(), (d / "merges.txt").string());
}

void Gpt2Tokenizer::bpe(const std::string& piece, std::vector<uint32_t>& out) const {
  if (auto it = cache_.find(piece); it != cache_.end()) {
    out.insert(out.end(), it->second.begin(), it->second.end());
    return;
  }
  std::vector<std::string> word;
  for (unsigned char c : piece) word.push_back(byte_symbol_[c]);
  std::string key;
  while (word.size() > 1) {
    // The adjacent pair of lowest rank; then every non-overlapping occurrence of it, left to right.
    int best = std::numeric_limits<int>::max();
    size_t at = 0;
    for (size_t i = 0; i + 1 < word.size(); ++i) {
      key.assign(word[i]).append(1, ' ').append(word[i + 1]);
      if (auto r = ranks_.find(key); r != ranks_.end() && r->second < best) best = r->second, at = i;
    }
    if (best == std::numeric_limits<int>::max()) break;
    const std::string first = word[at], second = word[at + 1];
    std::vector<std::string> merged;
    for (size_t i = 0; i < word.size();) {
      if (i + 1 < word.size() && word[i] == first && word[i + 1] == second) {
        merged.push_back(first + second);
        i += 2;
      } else {
        merged.push_back(std::move(word[i++]));
      }
    }
    word.swap(merged);
  }
  std::vector<uint32_t> ids;
  for (const std::string& s : word) ids.push_back(vocab_.at(s));  // present: checked when merges.txt was read
  if (cache_.size() > 200000) cache_.clear();
  out.insert(out.end(), ids.begin(), ids.end());
  cache_.emplace(piece, std::move(ids));
}

std::vector<uint32_t> Gpt2Tokenizer::encode(std::string_view text) const {
  std::vector<uint32_t> out;
  for (std::string_view piece : pre_.split(text)) bpe(std::string(piece), out);
  return out;
}

std::vector<uint32_t> Gpt2Tokenizer::encode_with_special(std::string_view text) const {
  std::vector<uint32_t> out;
  const std::string_view eot(kEndOfText);
  for (size_t start = 0;;) {
    const size_t at = text.find(eot, start);
    const std::vector<uint32_t> part = encode(text.substr(start, at == std::string_view::npos ? text.npos : at - start));
    out.insert(out.end(), part.begin(), part.end());
    if (at == std::string_view::npos) return out;
    out.push_back(eot_);
    start = at + eot.size();
  }
}

std::string Gpt2Tokenizer::decode(const std::vector<uint32_t>& ids) const {
  std::string out;
  for (uint32_t id : ids) {
    if (id >= symbols_.size() || symbols_[id].empty())
      throw std::out_of_range("token id " + std::to_string(id) + " has no symbol in the vocabulary");
    for (uint32_t cp : code_points(symbols_[id])) out += static_cast<char>(symbol_byte_.at(cp));
  }
  return out;
}

}  // namespace lora
