#include "trainer/train/load_base.h"

#include <cstdio>

#include "comm/collective_guard.h"
#include "io/base_weights.h"
#include "io/hf_base_weights.h"
#include "io/input_error.h"
#include "trainer/config/config_loader.h"

namespace lora {

std::string human_bytes(uint64_t n) {
  char buf[32];
  if (n < 1024) std::snprintf(buf, sizeof buf, "%llu bytes", static_cast<unsigned long long>(n));
  else if (n < (1u << 20)) std::snprintf(buf, sizeof buf, "%.1f KiB", n / 1024.0);
  else std::snprintf(buf, sizeof buf, "%.1f MiB", n / 1048576.0);
  return buf;
}

namespace {
void check_seeded_base(const RunConfig& cfg, const GptModel<float>& model) {
  for (const TensorSpec& s : model.base_layout().tensors) {
    if (model.first_nonfinite_in(s) == s.local_size()) continue;
    char std_text[32];
    std::snprintf(std_text, sizeof std_text, "%g", cfg.model.init_std);
    throw ConfigError(cfg.source_path + ": model.init_std: " + std_text + " draws non-finite base weights (first in tensor '" +
                      s.name + "'); GPT-2 uses 0.02");
  }
}
}  // namespace

void load_frozen_base(const RunConfig& cfg, GptModel<float>& model, Communicator& comm, std::FILE* log) {
  const ModelConfig& m = cfg.model;
  const int tp_rank = model.dims().tp_rank;
  if (m.init == "file") {
    agree_on_failure<InputError>(comm, Group::World, kExitBadInput, "read its slice of the base weights", [&] {
      read_base_weights(m.weights_file, model.base_layout(), tp_rank, model.base().data(), model.base_bf16().data(),
                        &model.nf4_staging());
    });
    model.finish_nf4();  // model.dtype nf4: every rank has read; the TP group double-quantizes
  } else if (m.init == "hf") {
    HfReadStats read;
    agree_on_failure<InputError>(comm, Group::World, kExitBadInput, "read its slice of the HF base weights", [&] {
      read = read_hf_base_weights(m.path, model.base_layout(), tp_rank, model.base().data(), model.base_bf16().data(),
                                  m.arch, &model.nf4_staging());
    });
    model.finish_nf4();
    if (log)  // what this rank took from the files: its shard, not the whole checkpoint
      std::fprintf(log, "base weights: %s (%s safetensors): read %s of %s on TP rank 0 (%llu pages of 4 KiB)\n",
                  m.path.c_str(), read.dtypes.c_str(), human_bytes(read.bytes_read).c_str(),
                  human_bytes(read.file_bytes).c_str(), static_cast<unsigned long long>(read.pages_touched));
  } else {
    model.init_base_from_seed(m.init_seed);
    agree_on_failure<ConfigError>(comm, Group::World, kExitConfig, "draw finite base weights",
                                  [&] { check_seeded_base(cfg, model); });
  }
}

}  // namespace lora
