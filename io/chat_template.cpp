#include "io/chat_template.h"

#include <algorithm>
#include <cctype>
#include <stdexcept>

#include "io/input_error.h"

namespace lora {

namespace {

bool has(const std::string& s, const char* what) { return s.find(what) != std::string::npos; }

// Python's str.isspace() characters, as Jinja's trim filter and str.strip() use them.
bool python_space(const std::string& s, size_t at, size_t* len) {
  static const char* const kSpaces[] = {"\t", "\n", "\v", "\f", "\r", "\x1c", "\x1d", "\x1e", "\x1f", " ",
                                        "\xc2\x85", "\xc2\xa0", "\xe1\x9a\x80", "\xe2\x80\xa8", "\xe2\x80\xa9",
                                        "\xe2\x80\xaf", "\xe2\x81\x9f", "\xe3\x80\x80"};
  for (const char* sp : kSpaces) {
    const size_t n = std::char_traits<char>::length(sp);
    if (s.compare(at, n, sp) == 0) return *len = n, true;
  }
  // U+2000..U+200A: E2 80 80..8A
  if (s.compare(at, 2, "\xe2\x80") == 0 && at + 2 < s.size() && static_cast<unsigned char>(s[at + 2]) >= 0x80 &&
      static_cast<unsigned char>(s[at + 2]) <= 0x8a)
    return *len = 3, true;
  return false;
}

// str.strip(): leading and trailing whitespace off.
std::string strip(const std::string& s) {
  size_t a = 0, n = 0;
  while (a < s.size() && python_space(s, a, &n)) a += n;
  size_t b = a;  // the end of the last non-space character
  for (size_t i = a; i < s.size();) {
    if (python_space(s, i, &n)) {
      i += n;
    } else {
      const auto c = static_cast<unsigned char>(s[i]);
      i += c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
      b = std::min(i, s.size());
    }
  }
  return s.substr(a, b - a);
}

// A ChatML template that writes a system message of its own ("<|im_start|>system\nYou are ..."
// as literal text, as Qwen2 and Qwen2.5 do when the conversation has none).
bool default_system_message(const std::string& s) {
  const std::string head = "<|im_start|>system\\n";  // as the template's Jinja string literal spells it
  for (size_t at = s.find(head); at != std::string::npos; at = s.find(head, at + 1)) {
    const size_t next = at + head.size();
    if (next < s.size() && std::isalpha(static_cast<unsigned char>(s[next]))) return true;
  }
  return false;
}

std::string lstrip_newlines(const std::string& s) { return s.substr(std::min(s.find_first_not_of('\n'), s.size())); }
std::string rstrip_newlines(const std::string& s) {
  const size_t last = s.find_last_not_of('\n');
  return last == std::string::npos ? "" : s.substr(0, last + 1);
}
std::string strip_newlines(const std::string& s) { return rstrip_newlines(lstrip_newlines(s)); }

// Appends; `assistant` marks the text as part of an assistant turn.
struct Writer {
  RenderedChat out;
  void text(const std::string& s) { out.text += s; }
  void scored(const std::string& s) {
    out.assistant.emplace_back(out.text.size(), out.text.size() + s.size());
    out.text += s;
  }
};

void check_roles(const std::vector<ChatMessage>& messages) {
  if (messages.empty()) throw std::invalid_argument("\"messages\" is empty");
  for (size_t i = 0; i < messages.size(); ++i) {
    const std::string& r = messages[i].role;
    if (r != "system" && r != "user" && r != "assistant")
      throw std::invalid_argument("messages[" + std::to_string(i) + "]: role \"" + r + "\" is not system, user or assistant");
    if (r == "system" && i != 0)
      throw std::invalid_argument("messages[" + std::to_string(i) + "]: a system message comes first, or not at all");
  }
}

void render_llama3(const ChatTemplate& t, const std::vector<ChatMessage>& m, bool generation_prompt, Writer& w) {
  for (size_t i = 0; i < m.size(); ++i) {
    w.text((i == 0 ? t.bos : "") + "<|start_header_id|>" + m[i].role + "<|end_header_id|>\n\n");
    const std::string body = strip(m[i].content) + "<|eot_id|>";
    m[i].role == "assistant" ? w.scored(body) : w.text(body);
  }
  if (generation_prompt || t.always_generation_prompt) w.text("<|start_header_id|>assistant<|end_header_id|>\n\n");
}

void render_chatml(const std::vector<ChatMessage>& m, bool generation_prompt, Writer& w) {
  for (const ChatMessage& msg : m) {
    w.text("<|im_start|>" + msg.role + "\n");
    msg.role == "assistant" ? w.scored(msg.content + "<|im_end|>") : w.text(msg.content + "<|im_end|>");
    w.text("\n");
  }
  if (generation_prompt) w.text("<|im_start|>assistant\n");
}

// Qwen3's template without tools: reasoning ("<think>...</think>" in the content) is shown on
// the assistant turns after the last user turn, and the last turn always gets a think block.
void render_qwen3(const std::vector<ChatMessage>& m, bool generation_prompt, Writer& w) {
  size_t last_query = m.size() - 1;
  for (size_t i = m.size(); i-- > 0;)
    if (m[i].role == "user") {
      last_query = i;
      break;
    }
  for (size_t i = 0; i < m.size(); ++i) {
    const ChatMessage& msg = m[i];
    if (msg.role != "assistant") {
      w.text("<|im_start|>" + msg.role + "\n" + msg.content + "<|im_end|>\n");
      continue;
    }
    std::string content = msg.content, reasoning;
    if (const size_t end = content.rfind("</think>"); end != std::string::npos) {
      const std::string before = content.substr(0, content.find("</think>"));
      content = lstrip_newlines(content.substr(end + 8));
      const size_t open = before.rfind("<think>");
      reasoning = lstrip_newlines(open == std::string::npos ? rstrip_newlines(before) : rstrip_newlines(before).substr(open + 7));
    }
    w.text("<|im_start|>assistant\n");
    const bool after_query = i > last_query;
    if (after_query && (i + 1 == m.size() || !reasoning.empty()))
      w.scored("<think>\n" + strip_newlines(reasoning) + "\n</think>\n\n" + lstrip_newlines(content) + "<|im_end|>");
    else
      w.scored(content + "<|im_end|>");
    w.text("\n");
  }
  if (generation_prompt) w.text("<|im_start|>assistant\n");
}

void render_llama2(const ChatTemplate& t, const std::vector<ChatMessage>& m, Writer& w) {
  const bool system = m[0].role == "system";
  for (size_t i = system ? 1 : 0, turn = 0; i < m.size(); ++i, ++turn) {
    const bool user = m[i].role == "user";
    if (user != (turn % 2 == 0))
      throw std::invalid_argument("Llama 2's template needs the turns to alternate user/assistant/user/... (messages[" +
                                  std::to_string(i) + "] is " + m[i].role + ")");
    std::string content = m[i].content;
    if (turn == 0 && system) content = "<<SYS>>\n" + m[0].content + "\n<</SYS>>\n\n" + content;
    if (user) w.text(t.bos + "[INST] " + strip(content) + " [/INST]");
    else w.scored(" " + strip(content) + " " + t.eos);
  }
}

}  // namespace

ChatTemplate recognise_chat_template(const TokenizerConfig& config) {
  const std::string where = (config.path.empty() ? std::string("tokenizer_config.json") : config.path) + ": key chat_template";
  if (!config.chat_template)
    throw InputError(where + ": missing, so JSONL \"messages\" cannot be rendered (the folder's tokenizer_config.json "
                     "has no chat template; use \"prompt\"/\"completion\" examples)");
  const std::string& s = *config.chat_template;
  ChatTemplate t;
  t.bos = config.bos_token.value_or("");
  t.eos = config.eos_token.value_or("");
  if (has(s, "<|start_header_id|>") && has(s, "<|end_header_id|>") && has(s, "<|eot_id|>")) {
    if (has(s, "Cutting Knowledge Date") || has(s, "tools"))
      throw InputError(where + ": Llama 3.1's template (dated system header, tools) is not rendered natively; "
                       "only Llama 3's plain header-id template is");
    t.family = ChatFamily::Llama3;
    t.always_generation_prompt = !has(s, "add_generation_prompt");
    return t;
  }
  if (has(s, "<|im_start|>") && has(s, "<|im_end|>")) {
    if (default_system_message(s))
      throw InputError(where + ": a ChatML template that adds a default system message is not rendered natively; "
                       "give a system message in each conversation or use a template without one");
    t.family = has(s, "</think>") ? ChatFamily::Qwen3 : ChatFamily::ChatML;
    return t;
  }
  if (has(s, "[INST]") && has(s, "[/INST]") && has(s, "<<SYS>>")) {
    t.family = ChatFamily::Llama2;
    return t;
  }
  throw InputError(where + ": not a template lora_dist can render (known: Llama 3's header ids, ChatML as Qwen2 and "
                   "Qwen3 use it, Llama 2's [INST] with <<SYS>>); starts " + s.substr(0, 60));
}

RenderedChat render_chat(const ChatTemplate& t, const std::vector<ChatMessage>& messages, bool add_generation_prompt) {
  check_roles(messages);
  Writer w;
  switch (t.family) {
    case ChatFamily::Llama3: render_llama3(t, messages, add_generation_prompt, w); break;
    case ChatFamily::ChatML: render_chatml(messages, add_generation_prompt, w); break;
    case ChatFamily::Qwen3: render_qwen3(messages, add_generation_prompt, w); break;
    case ChatFamily::Llama2: render_llama2(t, messages, w); break;
  }
  return w.out;
}

}  // namespace lora
