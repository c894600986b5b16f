#include "io/hf_model_folder.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "io/input_error.h"
#include "io/json_preview.h"

namespace lora {

namespace {

namespace fs = std::filesystem;
constexpr const char* kSingle = "model.safetensors";
constexpr const char* kIndex = "model.safetensors.index.json";
constexpr const char* kPrefix = "transformer.";
constexpr uintmax_t kMaxIndexBytes = 64u << 20;  // GPT-3 175B's index is ~100 KiB

nlohmann::json read_index(const std::string& path) {
  std::error_code ec;
  if (fs::file_size(path, ec) > kMaxIndexBytes)
    throw InputError(path + ": larger than any index (limit " + std::to_string(kMaxIndexBytes) + " bytes)");
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  try {
    return nlohmann::json::parse(text.str());
  } catch (const nlohmann::json::exception& e) {
    throw InputError(path + ": not valid JSON: " + e.what());
  }
}

// A shard named by the index must be a plain file name in the folder: "../x" or "/etc/x"
// would read outside it.
bool plain_file_name(const std::string& s) {
  return !s.empty() && s != "." && s != ".." && s.find('/') == std::string::npos && s.find('\0') == std::string::npos;
}

}  // namespace

std::vector<std::string> HfModelFolder::weight_file_paths(const std::string& dir) {
  const fs::path single = fs::path(dir) / kSingle, index = fs::path(dir) / kIndex;
  std::error_code ec;
  if (fs::exists(single, ec)) return {single.string()};
  std::vector<std::string> out;
  if (!fs::exists(index, ec)) return out;
  out.push_back(index.string());
  const nlohmann::json j = read_index(index.string());
  std::set<std::string> files;
  if (j.is_object() && j.contains("weight_map") && j["weight_map"].is_object())
    for (const auto& kv : j["weight_map"].items())
      if (kv.value().is_string() && plain_file_name(kv.value().get<std::string>())) files.insert(kv.value().get<std::string>());
  for (const std::string& f : files) out.push_back((fs::path(dir) / f).string());
  return out;
}

void HfModelFolder::add(const SafetensorsFile& f, const std::string& stored, const std::string& origin) {
  const bool prefixed = stored.rfind(kPrefix, 0) == 0;
  const std::string name = prefixed ? stored.substr(std::string(kPrefix).size()) : stored;
  auto [it, fresh] = tensors_.emplace(name, HfTensorRef{&f, f.find(stored), stored});
  if (!fresh)
    throw InputError(origin + ": tensor '" + stored + "' and tensor '" + it->second.stored_name + "' (in " +
                     it->second.file->path() + ") are the same GPT-2 tensor '" + name + "' with and without the '" +
                     kPrefix + "' prefix; which one is meant?");
}

HfModelFolder::HfModelFolder(const std::string& dir) : dir_(dir) {
  const fs::path single = fs::path(dir) / kSingle, index = fs::path(dir) / kIndex;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw InputError(dir + ": not a folder (model.path names an HF model folder)");
  if (fs::exists(single, ec)) {
    source_ = single.string();
    files_.push_back(std::make_unique<SafetensorsFile>(single.string()));
    for (const auto& kv : files_.back()->tensors()) add(*files_.back(), kv.first, single.string());
    return;
  }
  if (!fs::exists(index, ec))
    throw InputError(dir + ": neither " + kSingle + " nor " + kIndex +
                     " (lora_dist reads safetensors; convert a pytorch_model.bin folder with transformers' "
                     "save_pretrained(..., safe_serialization=True))");
  const std::string ipath = index.string();
  source_ = ipath;
  const nlohmann::json j = read_index(ipath);
  if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
    throw InputError(ipath + ": expected a JSON object with a \"weight_map\": {tensor: file} object");
  std::map<std::string, const SafetensorsFile*> opened;
  for (const auto& kv : j["weight_map"].items()) {
    const std::string& tensor = kv.key();
    if (!kv.value().is_string() || !plain_file_name(kv.value().get<std::string>()))
      throw InputError(ipath + ": tensor '" + tensor + "' maps to " + json_preview(kv.value()) +
                       "; expected the name of a file in the folder");
    const std::string file = kv.value().get<std::string>();
    if (!opened.count(file)) {
      const fs::path p = fs::path(dir) / file;
      if (!fs::is_regular_file(p, ec))
        throw InputError(ipath + ": tensor '" + tensor + "' is in " + file + ", which is not in the folder");
      files_.push_back(std::make_unique<SafetensorsFile>(p.string()));
      opened[file] = files_.back().get();
    }
    const SafetensorsFile& f = *opened[file];
    if (!f.find(tensor))
      throw InputError(f.path() + ": no tensor '" + tensor + "', which " + kIndex + " places in this file");
    add(f, tensor, ipath);
  }
}

const HfTensorRef* HfModelFolder::find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

}  // namespace lora
