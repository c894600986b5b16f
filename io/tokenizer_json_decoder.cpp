#include "io/tokenizer_json_decoder.h"

#include "io/byte_level_alphabet.h"
#include "io/input_error.h"
#include "io/json_preview.h"

namespace lora {

namespace {

// The code points of `s` (UTF-8; a stray byte counts as one), with where each starts.
std::vector<std::pair<uint32_t, size_t>> code_points(const std::string& s) {
  std::vector<std::pair<uint32_t, size_t>> out;
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    const size_t n = c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
    uint32_t cp = n == 1 ? c : n == 2 ? (c & 0x1f) : n == 3 ? (c & 0x0f) : (c & 0x07);
    for (size_t k = 1; k < n && i + k < s.size(); ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3f);
    out.emplace_back(cp, i);
    i += n;
  }
  return out;
}

std::string byte_level(const std::vector<std::string>& tokens) {
  const ByteLevelAlphabet& alphabet = ByteLevelAlphabet::get();
  std::string out;
  for (const std::string& t : tokens) {
    std::string bytes;
    bool all = true;
    for (auto [cp, at] : code_points(t)) {
      const auto it = alphabet.byte_of.find(cp);
      if (it == alphabet.byte_of.end()) {
        all = false;
        break;
      }
      bytes += static_cast<char>(it->second);
    }
    out += all ? bytes : t;
  }
  return out;
}

// "<0x0A>" -> 10; -1 for any other token.
int fallback_byte(const std::string& t) {
  if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return -1;
  int v = 0;
  for (int k = 3; k < 5; ++k) {
    const char c = t[k];
    const int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) s.replace(at, from.size(), to);
  return s;
}

}  // namespace

TokenizerJsonDecoder::TokenizerJsonDecoder(const nlohmann::json& spec, const std::string& file) {
  if (!spec.is_null()) add(spec, file, "decoder");
}

void TokenizerJsonDecoder::add(const nlohmann::json& spec, const std::string& file, const std::string& key) {
  const std::string where = file + ": key " + key;
  if (!spec.is_object() || !spec.contains("type") || !spec["type"].is_string())
    throw InputError(where + ": expected an object with a string \"type\" (got " + json_preview(spec) + ")");
  const std::string type = spec["type"].get<std::string>();
  auto text = [&](const char* k, const std::string& fallback) {
    if (!spec.contains(k)) return fallback;
    if (!spec[k].is_string()) throw InputError(where + "." + k + ": expected a string (got " + json_preview(spec[k]) + ")");
    return spec[k].get<std::string>();
  };
  auto count = [&](const char* k) {
    if (!spec.contains(k)) return 0;
    if (!spec[k].is_number_unsigned() || spec[k].get<uint64_t>() > 1000)
      throw InputError(where + "." + k + ": expected a count (got " + json_preview(spec[k]) + ")");
    return spec[k].get<int>();
  };
  if (type == "Sequence") {
    if (!spec.contains("decoders") || !spec["decoders"].is_array()) throw InputError(where + ".decoders: expected a list");
    for (size_t i = 0; i < spec["decoders"].size(); ++i)
      add(spec["decoders"][i], file, key + ".decoders[" + std::to_string(i) + "]");
  } else if (type == "ByteLevel") {
    steps_.push_back({Kind::ByteLevel, "", "", 0, 0, true});
  } else if (type == "Replace") {
    const nlohmann::json& pattern = spec.contains("pattern") ? spec["pattern"] : nlohmann::json();
    if (!pattern.is_object() || !pattern.contains("String") || !pattern["String"].is_string() ||
        pattern["String"].get<std::string>().empty())
      throw InputError(where + ".pattern: only a non-empty {\"String\": ...} pattern is supported (got " + json_preview(pattern) + ")");
    steps_.push_back({Kind::Replace, pattern["String"].get<std::string>(), text("content", ""), 0, 0, true});
  } else if (type == "ByteFallback") {
    steps_.push_back({Kind::ByteFallback, "", "", 0, 0, true});
  } else if (type == "Fuse") {
    steps_.push_back({Kind::Fuse, "", "", 0, 0, true});
  } else if (type == "Strip") {
    const std::string content = text("content", " ");
    if (code_points(content).size() != 1) throw InputError(where + ".content: expected one character");
    steps_.push_back({Kind::Strip, content, "", count("start"), count("stop"), true});
  } else if (type == "Metaspace") {
    const std::string scheme = text("prepend_scheme", "always");
    const bool prefix = spec.contains("add_prefix_space") && spec["add_prefix_space"].is_boolean()
                            ? spec["add_prefix_space"].get<bool>() : scheme != "never";
    steps_.push_back({Kind::Metaspace, text("replacement", "\xe2\x96\x81"), "", 0, 0, prefix});
  } else {
    throw InputError(where + ".type: decoder \"" + type +
                     "\" is not supported (supported: ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace, Sequence)");
  }
}

std::string TokenizerJsonDecoder::decode(std::vector<std::string> tokens) const {
  for (const Step& s : steps_) {
    std::vector<std::string> next;
    switch (s.kind) {
      case Kind::ByteLevel: next.push_back(byte_level(tokens)); break;
      case Kind::Replace:
        for (std::string& t : tokens) next.push_back(replace_all(std::move(t), s.a, s.b));
        break;
      case Kind::ByteFallback: {
        std::string bytes;  // consecutive <0xNN> tokens, as one token
        for (std::string& t : tokens) {
          const int b = fallback_byte(t);
          if (b >= 0) {
            bytes += static_cast<char>(b);
            continue;
          }
          if (!bytes.empty()) next.push_back(std::move(bytes)), bytes.clear();
          next.push_back(std::move(t));
        }
        if (!bytes.empty()) next.push_back(std::move(bytes));
        break;
      }
      case Kind::Fuse: {
        std::string all;
        for (const std::string& t : tokens) all += t;
        next.push_back(std::move(all));
        break;
      }
      case Kind::Strip:
        for (std::string& t : tokens) {
          size_t a = 0, b = t.size();
          for (int k = 0; k < s.start && t.compare(a, s.a.size(), s.a) == 0 && a + s.a.size() <= b; ++k) a += s.a.size();
          for (int k = 0; k < s.stop && b >= a + s.a.size() && t.compare(b - s.a.size(), s.a.size(), s.a) == 0; ++k) b -= s.a.size();
          next.push_back(t.substr(a, b - a));
        }
        break;
      case Kind::Metaspace:
        for (size_t i = 0; i < tokens.size(); ++i) {
          std::string t = replace_all(std::move(tokens[i]), s.a, " ");
          if (i == 0 && s.prepend && !t.empty() && t[0] == ' ') t.erase(0, 1);
          next.push_back(std::move(t));
        }
        break;
    }
    tokens.swap(next);
  }
  std::string out;
  for (const std::string& t : tokens) out += t;
  return out;
}

}  // namespace lora
