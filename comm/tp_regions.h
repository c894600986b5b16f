// Megatron's names for the communication at the edge of a tensor-parallel region
// (core/tensor_parallel/mappings.py), so every call site says which one it is.
//   copy_to_tp_region:      forward identity,   backward all-reduce of dX over TP
//   reduce_from_tp_region:  forward all-reduce, backward identity
// The model is differentiated by hand, so each direction is its own function.
#pragma once
#include <cstddef>

#include "comm/communicator.h"

namespace lora {

// Forward of a row-parallel layer: sum the partial outputs of the TP ranks.
template <typename T>
void reduce_from_tp_region(Communicator& comm, T* y, size_t n) {
  comm.all_reduce_sum(y, n, Group::TP);
}

// Backward of the column-parallel layer's input copy: each TP rank holds a partial dX.
template <typename T>
void copy_to_tp_region_backward(Communicator& comm, T* dx, size_t n) {
  comm.all_reduce_sum(dx, n, Group::TP);
}

}  // namespace lora
