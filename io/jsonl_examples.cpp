#include "io/jsonl_examples.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "io/input_error.h"
#include "io/json_preview.h"

namespace lora {

std::vector<PromptCompletion> read_prompt_completion_jsonl(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) throw InputError(path + ": not found (or not a regular file)");
  std::ifstream in(path, std::ios::binary);
  std::vector<PromptCompletion> out;
  std::string line;
  int lineno = 0, blank = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();  // CRLF files
    if (line.find_first_not_of(" \t") == std::string::npos) {
      blank = blank ? blank : lineno;  // allowed only if nothing follows
      continue;
    }
    const std::string where = path + ":" + std::to_string(lineno) + ": ";
    if (blank) throw InputError(path + ":" + std::to_string(blank) + ": an empty line between examples (every line is one example)");
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      throw InputError(where + "not valid JSON: " + e.what());
    }
    if (!j.is_object()) throw InputError(where + "expected an object {\"prompt\": ..., \"completion\": ...} (got " + json_preview(j) + ")");
    PromptCompletion ex;
    ex.line = lineno;
    for (const char* key : {"prompt", "completion"}) {
      if (!j.contains(key)) throw InputError(where + "no \"" + key + "\"");
      if (!j[key].is_string()) throw InputError(where + "\"" + key + "\" must be a string (got " + json_preview(j[key]) + ")");
    }
    ex.prompt = j["prompt"].get<std::string>();
    ex.completion = j["completion"].get<std::string>();
    out.push_back(std::move(ex));
  }
  if (out.empty()) throw InputError(path + ": no examples (one JSON object per line)");
  return out;
}

}  // namespace lora
