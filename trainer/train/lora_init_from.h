// lora.init_from: a run's LoRA pairs start from a PEFT adapter folder (io/peft_adapter.h),
// ours or PEFT's when its structure fits the targets, instead of kaiming A / zero B.
#pragma once
#include "model/param_layout.h"
#include "trainer/config/run_config.h"

namespace lora {

// Every rank reads the (small) adapter whole and keeps its own slice of each pair in `params`
// (the rank's LoRA layout). Throws InputError naming the file and what does not fit.
void load_lora_init_from(const RunConfig& cfg, const LoraLayout& local, int tp_rank, float* params);

}  // namespace lora
