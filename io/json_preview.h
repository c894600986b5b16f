// A JSON value from a user's file, shortened for an error message. Lists and objects are
// described rather than dumped: nlohmann's dump recurses, and a file may nest 100000 deep.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace lora {

inline std::string json_preview(const nlohmann::json& v) {
  if (v.is_array()) return "a list of " + std::to_string(v.size()) + " items";
  if (v.is_object()) return "an object of " + std::to_string(v.size()) + " keys";
  std::string s = v.dump();
  return s.size() > 60 ? s.substr(0, 57) + "..." : s;
}

}  // namespace lora
