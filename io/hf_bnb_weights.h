// Hugging Face folders quantized by bitsandbytes to 4-bit NF4 ("-bnb-4bit" on the Hub, written
// by transformers with load_in_4bit and bnb_4bit_use_double_quant): each quantized linear
// weight W is stored as QuantState.as_dict(packed=True) writes it,
//   W                                   U8 [ceil(n/2), 1]  two NF4 codes a byte, [out, in] row-major
//   W.absmax                            U8 [blocks]        8-bit codes of each block's absmax - offset
//   W.nested_absmax                     F32 [groups]       one scale per 256 blocks
//   W.nested_quant_map                  F32 [256]          the dynamic map the absmax codes index
//   W.quant_map                         F32 [16]           the NF4 table
//   W.quant_state.bitsandbytes__nf4     U8 [bytes]         JSON: quant_type, blocksize, dtype, shape,
//                                                          nested_blocksize, nested_offset, nested_dtype
// (GPT-2's Conv1D weights are transposed to [out, in] before quantizing.) A rank copies the
// codes and absmax codes of its own rows, and the whole nested arrays, into its NF4 shard
// (model/nf4_weight.h): the folder's quantization is used as it is, not redone.
#pragma once
#include <string>
#include <vector>

#include "io/hf_model_folder.h"
#include "model/param_layout.h"

namespace lora {

// Whether the folder stores HF tensor `hf_name` as a bitsandbytes 4-bit weight (a U8 tensor
// with a quant_state companion).
bool is_bnb_4bit(const HfModelFolder& folder, const std::string& hf_name);

// Copies TP rank `tp_rank`'s part of the bitsandbytes NF4 tensor `hf_name` into `shard`, the
// NF4 shard of layout tensor `whole`, whose quantization segment `segment` it is (rows
// [first_row, first_row + rows) of `whole`): its rows' codes and absmax codes, and the segment's
// nested scales at the segment's place. Writes the dynamic map (every segment must carry the
// same one). Returns the segment's offset. `used` gets the companion tensors' names. Throws
// InputError naming the file and the tensor for a damaged or unsupported quant_state (not
// nf4, not blocksize 64, not double-quantized), a shape other than the model's, or a part of
// the wrong length.
float read_bnb_nf4_segment(const HfModelFolder& folder, const std::string& hf_name, const TensorSpec& whole,
                           size_t segment, int tp_rank, uint8_t* shard, std::vector<std::string>& used);

}  // namespace lora
