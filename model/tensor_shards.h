// Moving one tensor between its full shape and a TP rank's slice of it (param_layout.h
// says which slice). Checkpoints and the layout-invariance tests use these, so that any
// tp/dp layout reads and writes the same full tensors.
#pragma once
#include <vector>

#include "comm/communicator.h"
#include "model/param_layout.h"

namespace lora {

// The full [rows x cols] tensor, assembled on every rank of the TP group from the slices
// each holds at `local` (all-gather over TP for sharded tensors; a copy for replicated ones).
template <typename T>
std::vector<T> gather_full_tensor(Communicator& comm, const TensorSpec& spec, const T* local);

// Copies this TP rank's slice of `full` into `local` (padding rows become zero).
template <typename T>
void slice_of_full_tensor(const TensorSpec& spec, const T* full, int tp_rank, T* local);

}  // namespace lora
