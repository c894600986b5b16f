#define PCRE2_CODE_UNIT_WIDTH 8
#include "io/gpt2_pretokenizer.h"

#include <pcre2.h>

#include <stdexcept>

namespace lora {

namespace {
constexpr const char* kPattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

std::string pcre2_message(int code) {
  PCRE2_UCHAR buf[256];
  pcre2_get_error_message(code, buf, sizeof buf);
  return reinterpret_cast<const char*>(buf);
}
}  // namespace

struct Gpt2Pretokenizer::Impl {
  pcre2_code* code = nullptr;
};

Gpt2Pretokenizer::Gpt2Pretokenizer() : impl_(new Impl) {
  int err = 0;
  PCRE2_SIZE at = 0;
  impl_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(kPattern), PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP,
                              &err, &at, nullptr);
  if (!impl_->code) {
    delete impl_;
    throw std::logic_error("GPT-2 pre-tokenizer pattern: " + pcre2_message(err));
  }
  pcre2_jit_compile(impl_->code, PCRE2_JIT_COMPLETE);  // best effort: the interpreter gives the same matches
}

Gpt2Pretokenizer::~Gpt2Pretokenizer() {
  pcre2_code_free(impl_->code);
  delete impl_;
}

std::vector<std::string_view> Gpt2Pretokenizer::split(std::string_view text) const {
  std::vector<std::string_view> out;
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(impl_->code, nullptr);
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  PCRE2_SIZE pos = 0;
  uint32_t options = 0;  // UTF validity is checked once, on the first match
  while (pos < text.size()) {
    const int rc = pcre2_match(impl_->code, subject, text.size(), pos, options, md, nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;  // cannot happen: \s+ or a symbol run matches any character
    if (rc < 0) {
      const PCRE2_SIZE bad = pcre2_get_startchar(md);  // after a UTF error: where the invalid character starts
      pcre2_match_data_free(md);
      throw std::invalid_argument("not valid UTF-8 at byte " + std::to_string(bad) + ": " + pcre2_message(rc));
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    if (ov[1] == ov[0]) break;  // no empty matches in this pattern; guard against looping
    out.emplace_back(text.data() + ov[0], ov[1] - ov[0]);
    pos = ov[1];
    options = PCRE2_NO_UTF_CHECK;
  }
  pcre2_match_data_free(md);
  return out;
}

}  // namespace lora
