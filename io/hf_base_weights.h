// Frozen base weights from a Hugging Face folder (`model.init: hf`, `model.path: DIR`) of
// GPT-2 or of the Llama family (Llama, Mistral, Qwen2): safetensors, one file or sharded
// (io/hf_model_folder.h). Each TP rank copies only its rows or columns of the file.
//   GPT-2 stores its linear layers as Conv1D, weight [in, out] (c_attn [d, 3d] with
//   [Q | K | V] columns, heads contiguous in each); lora_dist's layout is [out, in]
//   (model/param_layout.h), so each weight is transposed while it is copied.
//   The Llama family's are nn.Linear [out, in], as lora_dist's; its q_proj, k_proj, v_proj
//   are the row blocks of lora_dist's fused attn.qkv, gate_proj and up_proj those of mlp.fc.
//   Its checkpoints are already permuted for Hugging Face's rotate-half RoPE: nothing is here.
// F32, F16 and BF16 are converted to the layout's type (model.dtype) on the way.
// io/BASE_WEIGHTS.md has the name map and the figures.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/param_layout.h"

namespace lora {

// What one rank took from the folder: the tensor bytes it copied (its shards, plus the
// replicated tensors, plus its rows of an lm_head.weight checked against wte), the distinct
// 4 KiB pages of the weight files those bytes lie in (what a page-granular reader must
// fetch), and the size of the weight files.
struct HfReadStats {
  uint64_t bytes_read = 0;
  uint64_t pages_touched = 0;
  uint64_t file_bytes = 0;
  std::string dtypes;  // the tensors' dtypes in the files: "F32", "BF16", "F16+F32"
};

// Fills this rank's buffers (layout built for its tp; vocabulary padding rows zero), as
// read_base_weights (io/base_weights.h) does for HDF5. Throws InputError naming the file and
// the tensor when a tensor is missing, has another shape than config.json gives, a dtype
// other than F32/F16/BF16, a non-finite value, when lm_head.weight is present and differs
// from the embedding on this rank's rows although the model ties them, when the folder holds
// layers beyond n_layer, and when a file is malformed (io/safetensors_file.h). `arch` is
// model.arch: "gpt" or "llama".
// NF4 tensors (model.dtype nf4) are staged in `nf4` as read_base_weights does.
template <typename T>
HfReadStats read_hf_base_weights(const std::string& dir, const ParamLayout& layout, int tp_rank, T* buffer,
                                 uint16_t* bf16_buffer = nullptr, const std::string& arch = "gpt",
                                 Nf4Staging* nf4 = nullptr);

// Where lora_dist tensor `name` lies in a Hugging Face folder of architecture `arch`: the HF
// tensors whose rows it stacks (one; or q_proj, k_proj, v_proj, or gate_proj, up_proj, for a
// fused Llama tensor), and whether they are GPT-2 Conv1D weights stored [in, out].
//   gpt:   "h.0.attn.qkv.weight" -> {"h.0.attn.c_attn.weight"}, transposed
//   llama: "h.0.attn.qkv.weight" -> {"model.layers.0.self_attn.q_proj.weight", ...k_proj, ...v_proj}
struct HfSource {
  std::vector<std::string> names;
  bool transposed = false;
};
HfSource hf_source(const std::string& name, const std::string& arch);

}  // namespace lora
