// The only gradient traffic of a LoRA step (DESIGN §4): two flat all-reduces issued once
// after the last micro-batch. The LoRA buffer is laid out [replicated-over-TP | TP-sharded]
// (model/param_layout.h), so each is one contiguous slice:
//   replicated factors (A of column-parallel, B of row-parallel layers): summed over the world
//     (their per-rank values are TP partial sums of the same tensor, and DP replicas);
//   sharded factors: summed over the DP group (each TP rank owns its slice).
// Frozen weights have no gradient buffer, so they can never enter a collective.
#pragma once
#include <cstddef>
#include <cstdint>

#include "comm/communicator.h"
#include "model/param_layout.h"

namespace lora {

// Returns the payload bytes this rank put into the two all-reduces.
uint64_t all_reduce_lora_grads(Communicator& comm, float* grads, size_t replicated, size_t total);

// Full fine-tuning (lora.enabled: false): the gradient of every base tensor. TP-sharded
// tensors are this rank's slice; replicated ones (LayerNorms, wpe, row-parallel biases) are
// computed whole, and identical, on every TP rank from the all-reduced activations (DESIGN
// §3), so summing them over TP would count them tp times: the whole buffer is summed over the
// DP group only, in one all-reduce. Returns the payload bytes.
uint64_t all_reduce_full_grads(Communicator& comm, float* grads, size_t total);

// Global L2 norm of a gradient in `layout`: replicated tensors counted once, sharded ones
// summed over the TP ranks (padding rows hold zeros). Call after the all-reduce.
double grad_norm(Communicator& comm, const ParamLayout& layout, const float* grads);

// Multiplies the gradient by max_norm / norm when norm > max_norm (torch's clip_grad_norm_).
void clip_grads(float* grads, size_t n, double norm, double max_norm);

// True when every rank holds bit-identical replicated tensors of `layout` (LoRA factors,
// or with full fine-tuning LayerNorms, wpe, row-parallel biases); a divergence means a
// collective or the optimizer went wrong somewhere, and training must stop.
bool replicated_in_sync(Communicator& comm, const float* params, const ParamLayout& layout);

}  // namespace lora
