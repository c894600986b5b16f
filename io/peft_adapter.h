// lora_dist's LoRA pairs as a Hugging Face PEFT LoRA adapter (PEFT >= 0.7); for GPT-2:
//   DIR/adapter_config.json        peft_type LORA, r, lora_alpha, target_modules,
//                                  fan_in_fan_out true, rank_pattern/alpha_pattern, ...
//   DIR/adapter_model.safetensors  base_model.model.transformer.h.N.<module>.lora_A.weight [r, in]
//                                  base_model.model.transformer.h.N.<module>.lora_B.weight [out, r]
// GPT-2's linear layers are Conv1D (weight [in, out], hence fan_in_fan_out); PEFT's A and B
// keep nn.Linear's [r, in] / [out, r] and its delta is B A * scale, transposed onto W.
//   o -> attn.c_proj, fc1 -> mlp.c_fc, fc2 -> mlp.c_proj: the same pair, the same scale.
//   q, k, v -> the one fused attn.c_attn (out = [Q | K | V] columns of W): with n of q, k, v
//   targeted, A = [A_q; A_k; A_v] (enabled ones stacked, [n r, d]) and B [3d, n r] is
//   block-structured: B_q in Q's rows and q's r columns, zeros elsewhere. Then
//   B A = [B_q A_q; B_k A_k; B_v A_v] (0 for an untargeted one) exactly, and rank_pattern /
//   alpha_pattern give c_attn rank n r and alpha n * alpha (rslora: sqrt(n) * alpha), so its
//   scale alpha/r (alpha/sqrt(r)) is unchanged.
// The Llama family (model.arch llama) has one nn.Linear per target, stored [out, in]:
//   base_model.model.model.layers.N.self_attn.{q,k,v,o}_proj.lora_{A,B}.weight and
//   ...mlp.{gate,up,down}_proj.lora_{A,B}.weight, A [r, in] and B [out, r] as lora_dist's,
//   target_modules ["q_proj", ...], fan_in_fan_out false; read back the same way.
#pragma once
#include <string>
#include <vector>

#include "model/param_layout.h"
#include "model/config.h"

namespace lora {

// Every LoRA tensor of `layout` (tp 1: full tensors) from `params`, written as a PEFT
// adapter into `dir`. `dir` must not exist or be empty; the files are written into a sibling
// temporary folder that is renamed to `dir` only when both are complete and on disk, so
// `dir` never holds a half-written adapter. `base_model` goes to base_model_name_or_path
// (empty: null). Throws std::runtime_error naming the folder when it cannot be written.
void write_peft_adapter(const std::string& dir, const LoraConfig& lc, const ModelConfig& m, const LoraLayout& layout,
                        const std::vector<float>& params, const std::string& base_model);

// The reverse: reads `dir` (as written above, or by PEFT when its structure fits: the same
// target modules, ranks and scales, and c_attn's B zero outside the blocks of the targeted
// q, k, v) into `params` (layout order, tp 1). Throws InputError naming the file and the
// tensor or key for anything that is missing, malformed or does not fit.
void read_peft_adapter(const std::string& dir, const LoraConfig& lc, const ModelConfig& m, const LoraLayout& layout,
                       std::vector<float>& params);

}  // namespace lora
