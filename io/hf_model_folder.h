// The weights of a Hugging Face model folder: `model.safetensors`, or the shards listed by
// `model.safetensors.index.json` ({"weight_map": {tensor: file}}), each memory-mapped and
// validated (io/safetensors_file.h). Tensor names are looked up without the `transformer.`
// prefix that GPT2LMHeadModel checkpoints carry (GPT2Model ones do not).
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "io/safetensors_file.h"

namespace lora {

struct HfTensorRef {
  const SafetensorsFile* file = nullptr;
  const SafetensorsTensor* tensor = nullptr;
  std::string stored_name;  // as in the file ("transformer.h.0.ln_1.weight")
};

class HfModelFolder {
 public:
  // Throws InputError naming the file (and tensor) when the folder has neither file, the
  // index is not a {"weight_map": {name: file}} JSON object, names a file outside the
  // folder or one that is missing, lists a tensor its file lacks, when a weight file is
  // malformed, or when a name is present both with and without the prefix.
  explicit HfModelFolder(const std::string& dir);

  const std::string& dir() const { return dir_; }
  // What names the folder's tensors: its model.safetensors, or its index.
  const std::string& source() const { return source_; }
  // By name without the prefix ("h.0.attn.c_attn.weight"); null when absent.
  const HfTensorRef* find(const std::string& name) const;
  const std::map<std::string, HfTensorRef>& tensors() const { return tensors_; }
  const std::vector<std::unique_ptr<SafetensorsFile>>& files() const { return files_; }
  // The weight files' paths, in a fixed order (the checkpoint fingerprint hashes them).
  static std::vector<std::string> weight_file_paths(const std::string& dir);

 private:
  void add(const SafetensorsFile& f, const std::string& stored, const std::string& origin);
  std::string dir_, source_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, HfTensorRef> tensors_;
};

}  // namespace lora
