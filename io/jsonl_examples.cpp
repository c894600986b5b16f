#include "io/jsonl_examples.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "io/input_error.h"
#include "io/json_preview.h"

namespace lora {

namespace {

std::vector<ChatMessage> read_messages(const nlohmann::json& list, const std::string& where) {
  if (!list.is_array() || list.empty())
    throw InputError(where + "\"messages\" must be a non-empty list of {\"role\", \"content\"} (got " + json_preview(list) + ")");
  std::vector<ChatMessage> out;
  for (size_t i = 0; i < list.size(); ++i) {
    const nlohmann::json& m = list[i];
    const std::string at = where + "messages[" + std::to_string(i) + "]: ";
    if (!m.is_object()) throw InputError(at + "expected {\"role\": ..., \"content\": ...} (got " + json_preview(m) + ")");
    for (const char* key : {"role", "content"}) {
      if (!m.contains(key)) throw InputError(at + "no \"" + key + "\"");
      if (!m[key].is_string()) throw InputError(at + "\"" + key + "\" must be a string (got " + json_preview(m[key]) + ")");
    }
    out.push_back({m["role"].get<std::string>(), m["content"].get<std::string>()});
  }
  return out;
}

}  // namespace

std::vector<JsonlExample> read_jsonl_examples(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) throw InputError(path + ": not found (or not a regular file)");
  std::ifstream in(path, std::ios::binary);
  std::vector<JsonlExample> out;
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
    if (!j.is_object())
      throw InputError(where + "expected an object {\"prompt\": ..., \"completion\": ...} or {\"messages\": [...]} (got " +
                       json_preview(j) + ")");
    JsonlExample ex;
    ex.line = lineno;
    if (j.contains("messages")) {
      if (j.contains("prompt") || j.contains("completion"))
        throw InputError(where + "both \"messages\" and \"prompt\"/\"completion\"; an example is one or the other");
      ex.messages = read_messages(j["messages"], where);
    } else {
      for (const char* key : {"prompt", "completion"}) {
        if (!j.contains(key)) throw InputError(where + "no \"" + key + "\" (and no \"messages\")");
        if (!j[key].is_string()) throw InputError(where + "\"" + key + "\" must be a string (got " + json_preview(j[key]) + ")");
      }
      ex.prompt = j["prompt"].get<std::string>();
      ex.completion = j["completion"].get<std::string>();
    }
    out.push_back(std::move(ex));
  }
  if (out.empty()) throw InputError(path + ": no examples (one JSON object per line)");
  return out;
}

}  // namespace lora
