// `lora_dist merge`: folds a trained adapter into the frozen weights, W0 += s B A for every
// target, and writes the result as a base-weights file (io/base_weights.h). A model loaded
// from it with `model.init: file` computes what base + adapter computed, with no LoRA branch
// left to run: inference pays nothing for the adapter (Hu et al. 2021, §4.1).
#pragma once
#include <string>

#include "trainer/config/run_config.h"

namespace lora {

// cfg gives the base model (init: seed or file) and the LoRA config the adapter was trained
// with; adapter is an adapter.h5 or a checkpoint, verified like a resume (read_adapter in
// io/checkpoint.h): an adapter for another base, r, targets or scale is refused with a
// CheckpointError (an InputError) naming the file and what differs. Runs on one process;
// `out` is written atomically and sealed.
void merge_adapter_into_base(const RunConfig& cfg, const std::string& adapter, const std::string& out);

// `lora_dist export --merged DIR`: the same merge, written as a Hugging Face GPT-2 folder
// (DIR/model.safetensors with GPT2LMHeadModel's names, "transformer.h.N.attn.c_attn.weight"
// [in, out] Conv1D, biases, ln_*, wte, wpe, no lm_head (tied); DIR/config.json) that
// transformers and `model.init: hf` load with no LoRA code. Each tensor is stored in the
// base's dtype as loaded: an HF base's dtype in its files (F32, BF16, F16), F32 for a seeded
// or HDF5 base, or every tensor in `dtype` ("fp32", "bf16", "fp16") when it is not empty; the
// merge itself is done in fp32 and rounded once. With model.dtype nf4 the base is the NF4 one
// the run trained on, dequantized. DIR must not exist or be empty; it is written atomically
// (io/atomic_folder.h). Returns the dtypes written ("F32", "BF16", ...). Needs MPI initialised
// (one process).
std::string export_merged_hf(const RunConfig& cfg, const std::string& adapter, const std::string& dir,
                             const std::string& dtype = "");

}  // namespace lora
