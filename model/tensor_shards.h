// Moving one tensor between its full shape and a TP rank's slice of it (param_layout.h
// says which slice). Checkpoints and the layout-invariance tests use these, so that any
// tp/dp layout reads and writes the same full tensors.
#pragma once
#include <cstddef>
#include <functional>
#include <vector>

#include "comm/communicator.h"
#include "model/param_layout.h"

namespace lora {

// Rows [row0, row0 + rows) x columns [col0, col0 + cols) of a full tensor, row-major.
template <typename T>
struct TensorBlock {
  int row0, rows, col0, cols;
  const T* data;
};

// Collective over TP: the full tensor handed to `sink`, on every rank of the TP group, as
// blocks that together cover it once (padding rows excluded), gathering at most about
// `max_elements` at a time (at least one local row of each rank). A writer then never holds
// the whole tensor: GPT-2's 50257 x 768 embedding is 147 MiB, and a full fine-tuning
// checkpoint gathered whole tensors twice over (recv buffer and reordered copy) on every rank.
constexpr size_t kGatherBlockElements = size_t(4) << 20;  // 16 MiB of float: the writers' block

template <typename T>
void for_each_full_block(Communicator& comm, const TensorSpec& spec, const T* local, size_t max_elements,
                         const std::function<void(const TensorBlock<T>&)>& sink);

// The full [rows x cols] tensor, assembled on every rank of the TP group from the slices
// each holds at `local` (all-gather over TP for sharded tensors; a copy for replicated ones).
template <typename T>
std::vector<T> gather_full_tensor(Communicator& comm, const TensorSpec& spec, const T* local);

// Copies this TP rank's slice of `full` into `local` (padding rows become zero).
template <typename T>
void slice_of_full_tensor(const TensorSpec& spec, const T* full, int tp_rank, T* local);

}  // namespace lora
