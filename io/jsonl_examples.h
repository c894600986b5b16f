// Fine-tuning examples from a JSONL file: one JSON object per line, either
//   {"prompt": string, "completion": string}                       or
//   {"messages": [{"role": "system|user|assistant", "content": string}, ...]}
// (other keys, such as an "id", are allowed and not read). Every line must be such an object:
// a malformed line is an error naming the file and the line, never skipped; so is an empty line
// other than the file's last.
#pragma once
#include <string>
#include <vector>

#include "io/chat_template.h"

namespace lora {

struct JsonlExample {
  std::string prompt, completion;     // a prompt/completion example, or:
  std::vector<ChatMessage> messages;  // a conversation (never empty)
  int line = 0;                       // 1-based, for messages
  bool is_chat() const { return !messages.empty(); }
};

// Throws InputError "<path>:<line>: ..." for a line that is not valid JSON (or not UTF-8), not
// an object, has neither "messages" nor "prompt"/"completion" (or both), holds a non-string
// there, or a "messages" that is not a non-empty list of {"role": string, "content": string};
// and for a file that is missing or holds no example.
std::vector<JsonlExample> read_jsonl_examples(const std::string& path);

}  // namespace lora
