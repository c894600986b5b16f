// Prompt/completion examples from a JSONL file: one JSON object per line with string keys
// "prompt" and "completion" (other keys, such as an "id", are allowed and not read). Every
// line must be such an object: a malformed line is an error naming the file and the line,
// never skipped; so is an empty line other than the file's last.
#pragma once
#include <string>
#include <vector>

namespace lora {

struct PromptCompletion {
  std::string prompt, completion;
  int line = 0;  // 1-based, for messages
};

// Throws InputError "<path>:<line>: ..." for a line that is not valid JSON (or not UTF-8),
// not an object, lacks "prompt" or "completion", or holds a non-string there; and for a file
// that is missing or holds no example.
std::vector<PromptCompletion> read_prompt_completion_jsonl(const std::string& path);

}  // namespace lora
