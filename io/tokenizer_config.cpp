#include "io/tokenizer_config.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "io/input_error.h"
#include "io/json_preview.h"

namespace lora {

namespace {

// "<s>" or {"content": "<s>", "lstrip": ...}: both forms occur (AddedToken serialised whole).
std::optional<std::string> token_name(const nlohmann::json& j, const std::string& path, const char* key) {
  if (!j.contains(key) || j[key].is_null()) return std::nullopt;
  const nlohmann::json& v = j[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  throw InputError(path + ": key \"" + key + "\" must be a string or {\"content\": string} (got " + json_preview(v) + ")");
}

}  // namespace

TokenizerConfig read_tokenizer_config(const std::string& dir) {
  TokenizerConfig c;
  const std::string path = (std::filesystem::path(dir) / "tokenizer_config.json").string();
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return c;
  c.path = path;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(std::ifstream(path, std::ios::binary));
  } catch (const nlohmann::json::exception& e) {
    throw InputError(path + ": not valid JSON: " + e.what());
  }
  if (!j.is_object()) throw InputError(path + ": expected a JSON object (got " + json_preview(j) + ")");
  c.bos_token = token_name(j, path, "bos_token");
  c.eos_token = token_name(j, path, "eos_token");
  if (j.contains("add_bos_token") && !j["add_bos_token"].is_null()) {
    if (!j["add_bos_token"].is_boolean())
      throw InputError(path + ": key \"add_bos_token\" must be true or false (got " + json_preview(j["add_bos_token"]) + ")");
    c.add_bos_token = j["add_bos_token"].get<bool>();
  }
  if (j.contains("chat_template") && !j["chat_template"].is_null()) {
    const nlohmann::json& t = j["chat_template"];
    if (t.is_string()) {
      c.chat_template = t.get<std::string>();
    } else if (t.is_array()) {  // [{"name": "default", "template": ...}, {"name": "tool_use", ...}]
      for (const auto& named : t)
        if (named.is_object() && named.value("name", "") == "default" && named.contains("template") &&
            named["template"].is_string())
          c.chat_template = named["template"].get<std::string>();
      if (!c.chat_template)
        throw InputError(path + ": key \"chat_template\" is a list with no {\"name\": \"default\", \"template\": string}");
    } else {
      throw InputError(path + ": key \"chat_template\" must be a string (got " + json_preview(t) + ")");
    }
  }
  return c;
}

}  // namespace lora
