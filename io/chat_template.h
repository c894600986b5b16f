// Chat conversations rendered as a model folder's chat template would render them
// (tokenizer_config.json "chat_template", a Jinja program that Hugging Face transformers runs).
// There is no Jinja engine here: the template's text is recognised as one of the known families
// and rendered natively, character for character as Jinja renders it (tests/tokenizer/
// chat_template_test.py checks that against python3-jinja2 and the real templates):
//   Llama 3     <|start_header_id|>role<|end_header_id|>\n\n content (trimmed) <|eot_id|>, the
//               BOS before the first turn; the assistant header at the end where the template
//               adds it (with add_generation_prompt, or always where the template does not ask).
//               Llama 3.1's dated system header ("Cutting Knowledge Date") is not rendered.
//   ChatML      <|im_start|>role\n content <|im_end|>\n (Qwen2, Qwen3); Qwen3's form (it mentions
//               </think>) with its <think> block on the assistant turns after the last user turn.
//               A template that adds a default system message is not rendered.
//   Llama 2     <s>[INST] <<SYS>>\n system \n<</SYS>>\n\n user [/INST] assistant </s>, user and
//               assistant alternating (Meta's Llama-2-chat template).
// Any other template is refused, naming the file and key. The assistant turns' text (content
// and its end-of-turn token) is where a fine-tuning loss is taken (prepare's loss mask).
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "io/tokenizer_config.h"

namespace lora {

struct ChatMessage {
  std::string role;  // system, user, assistant
  std::string content;
};

enum class ChatFamily { Llama3, ChatML, Qwen3, Llama2 };

struct ChatTemplate {
  ChatFamily family;
  std::string bos, eos;                 // tokenizer_config.json's bos_token / eos_token texts
  bool always_generation_prompt = false;  // Llama 3's early template: the header without asking
};

// The family of `config`'s chat template. Throws InputError "<tokenizer_config.json>: key
// chat_template: ..." when there is none, or it is not one of the families above.
ChatTemplate recognise_chat_template(const TokenizerConfig& config);

struct RenderedChat {
  std::string text;
  std::vector<std::pair<size_t, size_t>> assistant;  // [begin, end) byte ranges of the assistant turns
};

// Throws std::invalid_argument for a role other than system/user/assistant, a system message
// that is not first, or (Llama 2) turns that do not alternate user/assistant.
RenderedChat render_chat(const ChatTemplate& t, const std::vector<ChatMessage>& messages, bool add_generation_prompt);

}  // namespace lora
