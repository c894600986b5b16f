#include "io/tokenizer_json_normalizer.h"

#include <utf8proc.h>

#include <cstdlib>
#include <stdexcept>

#include "io/input_error.h"
#include "io/json_preview.h"

namespace lora {

namespace {

// `s` in Unicode normalization form `options` (utf8proc's flags). Throws std::invalid_argument
// when `s` is not valid UTF-8.
std::string unicode_normalize(std::string_view s, int options) {
  utf8proc_uint8_t* out = nullptr;
  const utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()),
                                          static_cast<utf8proc_ssize_t>(s.size()), &out,
                                          static_cast<utf8proc_option_t>(options));
  if (n < 0) throw std::invalid_argument(std::string("not valid UTF-8: ") + utf8proc_errmsg(n));
  std::string r(reinterpret_cast<const char*>(out), static_cast<size_t>(n));
  std::free(out);
  return r;
}

// Normalization with alignment. Composition and reordering happen within a starter and the
// combining marks after it, so each such run is normalized on its own and its output bytes
// point at the run's first byte; where the runs' outputs do not add up to the whole text's
// (Hangul jamo compose across starters), every byte points at the text's start. The text itself
// is always the whole text's normalization.
AlignedText unicode_step(const AlignedText& in, int options) {
  AlignedText out;
  out.text = unicode_normalize(in.text, options);
  if (out.text == in.text) return in;
  std::string joined;
  std::vector<size_t> origin;
  const auto* p = reinterpret_cast<const utf8proc_uint8_t*>(in.text.data());
  size_t run = 0;
  auto flush = [&](size_t end) {
    if (end == run) return;
    const std::string part = unicode_normalize(std::string_view(in.text).substr(run, end - run), options);
    joined += part;
    origin.insert(origin.end(), part.size(), in.origin[run]);
    run = end;
  };
  for (size_t i = 0; i < in.text.size();) {
    utf8proc_int32_t cp = 0;
    const utf8proc_ssize_t n = utf8proc_iterate(p + i, static_cast<utf8proc_ssize_t>(in.text.size() - i), &cp);
    if (n <= 0) throw std::invalid_argument("not valid UTF-8 at byte " + std::to_string(in.origin[i]));
    if (utf8proc_get_property(cp)->combining_class == 0) flush(i);
    i += static_cast<size_t>(n);
  }
  flush(in.text.size());
  out.origin = joined == out.text ? origin : std::vector<size_t>(out.text.size(), in.origin.empty() ? 0 : in.origin[0]);
  return out;
}

AlignedText prepend_step(const AlignedText& in, const std::string& what) {
  if (in.text.empty()) return in;  // as Hugging Face: nothing is prepended to an empty string
  AlignedText out;
  out.text = what + in.text;
  out.origin.assign(what.size(), in.origin[0]);
  out.origin.insert(out.origin.end(), in.origin.begin(), in.origin.end());
  return out;
}

AlignedText replace_step(const AlignedText& in, const std::string& from, const std::string& to) {
  AlignedText out;
  for (size_t i = 0; i < in.text.size();) {
    if (in.text.compare(i, from.size(), from) == 0) {
      out.text += to;
      out.origin.insert(out.origin.end(), to.size(), in.origin[i]);
      i += from.size();
    } else {
      out.text += in.text[i];
      out.origin.push_back(in.origin[i]);
      ++i;
    }
  }
  return out;
}

AlignedText lowercase_step(const AlignedText& in) {
  AlignedText out;
  const auto* p = reinterpret_cast<const utf8proc_uint8_t*>(in.text.data());
  for (size_t i = 0; i < in.text.size();) {
    utf8proc_int32_t cp = 0;
    const utf8proc_ssize_t n = utf8proc_iterate(p + i, static_cast<utf8proc_ssize_t>(in.text.size() - i), &cp);
    if (n <= 0) throw std::invalid_argument("not valid UTF-8 at byte " + std::to_string(in.origin[i]));
    utf8proc_uint8_t buf[4];
    const utf8proc_ssize_t m = utf8proc_encode_char(utf8proc_tolower(cp), buf);
    out.text.append(reinterpret_cast<const char*>(buf), static_cast<size_t>(m));
    out.origin.insert(out.origin.end(), static_cast<size_t>(m), in.origin[i]);
    i += static_cast<size_t>(n);
  }
  return out;
}

}  // namespace

AlignedText AlignedText::identity(std::string_view s, size_t base) {
  AlignedText t;
  t.text.assign(s);
  t.origin.resize(s.size());
  for (size_t i = 0; i < s.size(); ++i) t.origin[i] = base + i;
  return t;
}

TokenizerJsonNormalizer::TokenizerJsonNormalizer(const nlohmann::json& spec, const std::string& file) {
  if (!spec.is_null()) add(spec, file, "normalizer");
}

void TokenizerJsonNormalizer::add(const nlohmann::json& spec, const std::string& file, const std::string& key) {
  const std::string where = file + ": key " + key;
  if (!spec.is_object() || !spec.contains("type") || !spec["type"].is_string())
    throw InputError(where + ": expected an object with a string \"type\" (got " + json_preview(spec) + ")");
  const std::string type = spec["type"].get<std::string>();
  auto string_key = [&](const char* k) {
    if (!spec.contains(k) || !spec[k].is_string())
      throw InputError(where + "." + k + ": expected a string (got " + (spec.contains(k) ? json_preview(spec[k]) : "nothing") + ")");
    return spec[k].get<std::string>();
  };
  if (type == "Sequence") {
    if (!spec.contains("normalizers") || !spec["normalizers"].is_array())
      throw InputError(where + ".normalizers: expected a list");
    for (size_t i = 0; i < spec["normalizers"].size(); ++i)
      add(spec["normalizers"][i], file, key + ".normalizers[" + std::to_string(i) + "]");
  } else if (type == "NFC" || type == "NFD" || type == "NFKC" || type == "NFKD") {
    int o = UTF8PROC_STABLE | (type[type.size() - 1] == 'C' ? UTF8PROC_COMPOSE : UTF8PROC_DECOMPOSE);
    if (type.size() == 4) o |= UTF8PROC_COMPAT;
    steps_.push_back({Kind::Unicode, o, "", ""});
  } else if (type == "Prepend") {
    steps_.push_back({Kind::Prepend, 0, string_key("prepend"), ""});
  } else if (type == "Replace") {
    const nlohmann::json& pattern = spec.contains("pattern") ? spec["pattern"] : nlohmann::json();
    if (!pattern.is_object() || !pattern.contains("String") || !pattern["String"].is_string() ||
        pattern["String"].get<std::string>().empty())
      throw InputError(where + ".pattern: only a non-empty {\"String\": ...} pattern is supported (got " +
                       json_preview(pattern) + ")");
    steps_.push_back({Kind::Replace, 0, pattern["String"].get<std::string>(), string_key("content")});
  } else if (type == "Lowercase") {
    steps_.push_back({Kind::Lowercase, 0, "", ""});
  } else {
    throw InputError(where + ".type: normalizer \"" + type +
                     "\" is not supported (supported: NFC, NFD, NFKC, NFKD, Prepend, Replace, Lowercase, Sequence)");
  }
}

AlignedText TokenizerJsonNormalizer::apply(AlignedText t) const {
  for (const Step& s : steps_) {
    switch (s.kind) {
      case Kind::Unicode: t = unicode_step(t, s.utf8proc_options); break;
      case Kind::Prepend: t = prepend_step(t, s.a); break;
      case Kind::Replace: t = replace_step(t, s.a, s.b); break;
      case Kind::Lowercase: t = lowercase_step(t); break;
    }
  }
  return t;
}

}  // namespace lora
