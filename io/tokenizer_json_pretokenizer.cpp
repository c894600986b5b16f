#define PCRE2_CODE_UNIT_WIDTH 8
#include "io/tokenizer_json_pretokenizer.h"

#include <pcre2.h>

#include <algorithm>
#include <stdexcept>

#include "io/byte_level_alphabet.h"
#include "io/input_error.h"
#include "io/json_preview.h"

namespace lora {

namespace {

// GPT-2's expression, which ByteLevel applies when use_regex is true.
constexpr const char* kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

std::string pcre2_message(int code) {
  PCRE2_UCHAR buf[256];
  pcre2_get_error_message(code, buf, sizeof buf);
  return reinterpret_cast<const char*>(buf);
}

// A compiled PCRE2 pattern; `literal`: the pattern is a plain string.
class Pattern {
 public:
  Pattern(const std::string& pattern, bool literal, const std::string& where) {
    int err = 0;
    PCRE2_SIZE at = 0;
    const uint32_t options = PCRE2_UTF | PCRE2_UCP | (literal ? PCRE2_LITERAL : 0);
    code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), options, &err, &at, nullptr);
    if (!code_)
      throw InputError(where + ": PCRE2 cannot compile " + nlohmann::json(pattern).dump() + ": " + pcre2_message(err) +
                       " at offset " + std::to_string(at));
    pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE);  // best effort: the interpreter gives the same matches
  }
  ~Pattern() { pcre2_code_free(code_); }
  Pattern(const Pattern&) = delete;
  Pattern& operator=(const Pattern&) = delete;

  // [start, end) of each non-empty match, left to right, in valid UTF-8 `s`.
  std::vector<std::pair<size_t, size_t>> matches(const std::string& s) const {
    std::vector<std::pair<size_t, size_t>> out;
    pcre2_match_data* md = pcre2_match_data_create_from_pattern(code_, nullptr);
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(s.data());
    for (size_t pos = 0; pos < s.size();) {
      const int rc = pcre2_match(code_, subject, s.size(), pos, PCRE2_NO_UTF_CHECK, md, nullptr);
      if (rc == PCRE2_ERROR_NOMATCH) break;
      if (rc < 0) {
        pcre2_match_data_free(md);
        throw std::runtime_error("PCRE2 match failed: " + pcre2_message(rc));
      }
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
      if (ov[1] == ov[0]) {  // an empty match: go on from the next character
        size_t next = ov[0] + 1;
        while (next < s.size() && (static_cast<unsigned char>(s[next]) & 0xc0) == 0x80) ++next;
        pos = next;
        continue;
      }
      out.emplace_back(ov[0], ov[1]);
      pos = ov[1];
    }
    pcre2_match_data_free(md);
    return out;
  }

 private:
  pcre2_code* code_ = nullptr;
};

AlignedText slice(const AlignedText& t, size_t a, size_t b) {
  AlignedText s;
  s.text = t.text.substr(a, b - a);
  s.origin.assign(t.origin.begin() + static_cast<std::ptrdiff_t>(a), t.origin.begin() + static_cast<std::ptrdiff_t>(b));
  return s;
}

enum class Behavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

// Hugging Face's NormalizedString::split: the text as runs that match or do not, then joined or
// dropped as `behavior` says; empty pieces are dropped.
std::vector<AlignedText> split_by(const AlignedText& t, const Pattern& p, Behavior behavior, bool invert) {
  struct Run {
    size_t a, b;
    bool match;
  };
  std::vector<Run> runs;
  size_t prev = 0;
  for (auto [a, b] : p.matches(t.text)) {
    if (prev != a) runs.push_back({prev, a, invert});
    runs.push_back({a, b, !invert});
    prev = b;
  }
  if (prev != t.text.size()) runs.push_back({prev, t.text.size(), invert});

  std::vector<Run> kept;
  switch (behavior) {
    case Behavior::Isolated: kept = std::move(runs); break;
    case Behavior::Removed:
      for (const Run& r : runs)
        if (!r.match) kept.push_back(r);
      break;
    case Behavior::Contiguous:
      for (const Run& r : runs) {
        if (!kept.empty() && kept.back().match == r.match) kept.back().b = r.b;
        else kept.push_back(r);
      }
      break;
    case Behavior::MergedWithPrevious: {
      bool previous_match = false;
      for (const Run& r : runs) {
        if (r.match && !previous_match && !kept.empty()) kept.back().b = r.b;
        else kept.push_back(r);
        previous_match = r.match;
      }
      break;
    }
    case Behavior::MergedWithNext: {
      bool previous_match = false;
      for (auto r = runs.rbegin(); r != runs.rend(); ++r) {
        if (r->match && !previous_match && !kept.empty()) kept.back().a = r->a;
        else kept.push_back(*r);
        previous_match = r->match;
      }
      std::reverse(kept.begin(), kept.end());
      break;
    }
  }
  std::vector<AlignedText> out;
  for (const Run& r : kept)
    if (r.b > r.a) out.push_back(slice(t, r.a, r.b));
  return out;
}

AlignedText to_byte_symbols(const AlignedText& t) {
  const ByteLevelAlphabet& alphabet = ByteLevelAlphabet::get();
  AlignedText out;
  for (size_t i = 0; i < t.text.size(); ++i) {
    const std::string& s = alphabet.symbol[static_cast<unsigned char>(t.text[i])];
    out.text += s;
    out.origin.insert(out.origin.end(), s.size(), t.origin[i]);
  }
  return out;
}

AlignedText prepend(const AlignedText& t, const std::string& what) {
  AlignedText out;
  out.text = what + t.text;
  out.origin.assign(what.size(), t.origin.empty() ? 0 : t.origin[0]);
  out.origin.insert(out.origin.end(), t.origin.begin(), t.origin.end());
  return out;
}

}  // namespace

struct TokenizerJsonPretokenizer::Step {
  enum class Kind { Split, ByteLevel, Metaspace } kind;
  std::unique_ptr<Pattern> pattern;  // Split; ByteLevel with use_regex
  Behavior behavior = Behavior::Isolated;
  bool invert = false;
  bool add_prefix_space = false;  // ByteLevel
  std::string replacement;        // Metaspace
  std::string prepend_scheme;     // Metaspace: always, first, never
  bool split = false;             // Metaspace
};

TokenizerJsonPretokenizer::TokenizerJsonPretokenizer(const nlohmann::json& spec, const std::string& file) {
  if (!spec.is_null()) add(spec, file, "pre_tokenizer");
}

TokenizerJsonPretokenizer::~TokenizerJsonPretokenizer() = default;

void TokenizerJsonPretokenizer::add(const nlohmann::json& spec, const std::string& file, const std::string& key) {
  const std::string where = file + ": key " + key;
  if (!spec.is_object() || !spec.contains("type") || !spec["type"].is_string())
    throw InputError(where + ": expected an object with a string \"type\" (got " + json_preview(spec) + ")");
  const std::string type = spec["type"].get<std::string>();
  auto flag = [&](const char* k, bool fallback) {
    if (!spec.contains(k) || spec[k].is_null()) return fallback;
    if (!spec[k].is_boolean()) throw InputError(where + "." + k + ": expected true or false (got " + json_preview(spec[k]) + ")");
    return spec[k].get<bool>();
  };
  auto step = std::make_unique<Step>();
  if (type == "Sequence") {
    if (!spec.contains("pretokenizers") || !spec["pretokenizers"].is_array())
      throw InputError(where + ".pretokenizers: expected a list");
    for (size_t i = 0; i < spec["pretokenizers"].size(); ++i)
      add(spec["pretokenizers"][i], file, key + ".pretokenizers[" + std::to_string(i) + "]");
    return;
  } else if (type == "Split") {
    step->kind = Step::Kind::Split;
    const nlohmann::json& pattern = spec.contains("pattern") ? spec["pattern"] : nlohmann::json();
    const bool regex = pattern.is_object() && pattern.contains("Regex") && pattern["Regex"].is_string();
    const bool literal = pattern.is_object() && pattern.contains("String") && pattern["String"].is_string();
    if (!regex && !literal)
      throw InputError(where + ".pattern: expected {\"Regex\": string} or {\"String\": string} (got " + json_preview(pattern) + ")");
    step->pattern = std::make_unique<Pattern>(pattern[regex ? "Regex" : "String"].get<std::string>(), literal, where + ".pattern");
    const std::string behavior = spec.value("behavior", std::string("Isolated"));
    if (behavior == "Removed") step->behavior = Behavior::Removed;
    else if (behavior == "Isolated") step->behavior = Behavior::Isolated;
    else if (behavior == "MergedWithPrevious") step->behavior = Behavior::MergedWithPrevious;
    else if (behavior == "MergedWithNext") step->behavior = Behavior::MergedWithNext;
    else if (behavior == "Contiguous") step->behavior = Behavior::Contiguous;
    else
      throw InputError(where + ".behavior: \"" + behavior +
                       "\" is not one of Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous");
    step->invert = flag("invert", false);
  } else if (type == "ByteLevel") {
    step->kind = Step::Kind::ByteLevel;
    step->add_prefix_space = flag("add_prefix_space", true);
    if (flag("use_regex", true)) step->pattern = std::make_unique<Pattern>(kGpt2Pattern, false, where);
    byte_level_ = true;
  } else if (type == "Metaspace") {
    step->kind = Step::Kind::Metaspace;
    step->replacement = spec.value("replacement", std::string("\xe2\x96\x81"));  // "▁"
    if (spec.contains("prepend_scheme") && spec["prepend_scheme"].is_string())
      step->prepend_scheme = spec["prepend_scheme"].get<std::string>();
    else
      step->prepend_scheme = flag("add_prefix_space", true) ? "always" : "never";  // the older form
    if (step->prepend_scheme != "always" && step->prepend_scheme != "first" && step->prepend_scheme != "never")
      throw InputError(where + ".prepend_scheme: \"" + step->prepend_scheme + "\" is not one of always, first, never");
    step->split = flag("split", true);
    if (step->split) step->pattern = std::make_unique<Pattern>(step->replacement, true, where);
  } else {
    throw InputError(where + ".type: pre-tokenizer \"" + type +
                     "\" is not supported (supported: Split, ByteLevel, Metaspace, Sequence)");
  }
  steps_.push_back(std::move(step));
}

std::vector<AlignedText> TokenizerJsonPretokenizer::split(AlignedText text, bool at_start) const {
  std::vector<AlignedText> pieces{std::move(text)};
  for (const auto& step : steps_) {
    std::vector<AlignedText> next;
    for (AlignedText& piece : pieces) {
      switch (step->kind) {
        case Step::Kind::Split: {
          for (AlignedText& p : split_by(piece, *step->pattern, step->behavior, step->invert)) next.push_back(std::move(p));
          break;
        }
        case Step::Kind::ByteLevel: {
          if (step->add_prefix_space && piece.text.rfind(' ', 0) != 0) piece = prepend(piece, " ");
          std::vector<AlignedText> parts;
          if (step->pattern) parts = split_by(piece, *step->pattern, Behavior::Isolated, false);
          else parts.push_back(std::move(piece));
          for (const AlignedText& p : parts) next.push_back(to_byte_symbols(p));
          break;
        }
        case Step::Kind::Metaspace: {
          AlignedText t = piece;
          t.text.clear();
          t.origin.clear();
          for (size_t i = 0; i < piece.text.size(); ++i) {  // " " -> the replacement
            const std::string s = piece.text[i] == ' ' ? step->replacement : std::string(1, piece.text[i]);
            t.text += s;
            t.origin.insert(t.origin.end(), s.size(), piece.origin[i]);
          }
          const bool starts = t.text.rfind(step->replacement, 0) == 0;
          const bool first = !piece.origin.empty() && piece.origin[0] == 0 && at_start;
          if (!starts && (step->prepend_scheme == "always" || (step->prepend_scheme == "first" && first)))
            t = prepend(t, step->replacement);
          if (step->split) {
            for (AlignedText& p : split_by(t, *step->pattern, Behavior::MergedWithNext, false)) next.push_back(std::move(p));
          } else {
            next.push_back(std::move(t));
          }
          break;
        }
      }
    }
    pieces.swap(next);
  }
  return pieces;
}

}  // namespace lora
