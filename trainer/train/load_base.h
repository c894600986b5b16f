// The frozen base of a run into a model's buffers, on every rank of the job: model.init file
// (HDF5), hf (a safetensors folder) or seeded. Shared by training (trainer.cpp) and
// generation (generate.cpp), so both read exactly the same weights.
#pragma once
#include <cstdio>

#include "comm/communicator.h"
#include "model/gpt.h"
#include "trainer/config/run_config.h"

namespace lora {

// Each rank reads only its TP slice. A rank that cannot read it makes every rank throw
// InputError (exit 3, the file and tensor named by that rank); a seeded base with a
// non-finite weight is a ConfigError (exit 2) naming model.init_std. With `log` (not null),
// writes one line there on what was read (for hf: the bytes this rank took from the files).
void load_frozen_base(const RunConfig& cfg, GptModel<float>& model, Communicator& comm, std::FILE* log);

// "12.5 MiB", "512 bytes".
std::string human_bytes(uint64_t n);

}  // namespace lora
