// Vocab-parallel cross-entropy (Megatron's): each TP rank holds the logits of its
// vocabulary slice [v0, v0 + Vl); only per-token scalars cross ranks (max, sum of exp,
// target logit), so the full [tokens x V] logits never exist anywhere. Columns at or
// beyond `valid` are vocabulary padding and are ignored (they never win the softmax).
// The model issues the all-reduces between these steps.
#pragma once
#include <cstdint>

namespace lora {

// row_max[i] = max over this slice's valid columns (-inf where it has none).
template <typename T>
void vocab_logits_max(T* row_max, const T* logits, int M, int Vl, int valid);

// stats[2i] = sum_j exp(logit_ij - row_max[i]); stats[2i+1] = the target's logit if the
// target is in this slice, else 0 (the TP all-reduce sums both).
template <typename T>
void vocab_sumexp_and_target(T* stats, const T* logits, const T* row_max, const int32_t* targets, int v0,
                             int M, int Vl, int valid);

// In place: logits <- weight[i] * (softmax_ij - [j == target_i]), with the global row_max
// and sum of exp. weight = loss mask / number of loss tokens of the global batch.
template <typename T>
void vocab_cross_entropy_backward(T* logits, const T* row_max, const T* stats, const int32_t* targets,
                                  const T* weight, int v0, int M, int Vl, int valid);

// The CUDA twin (model/ops/cuda/cross_entropy.cu): the same signatures over device pointers,
// float only; the CPU functions above are the reference it is tested against.
namespace cuda {
template <typename T>
void vocab_logits_max(T* row_max, const T* logits, int M, int Vl, int valid);
template <typename T>
void vocab_sumexp_and_target(T* stats, const T* logits, const T* row_max, const int32_t* targets, int v0,
                             int M, int Vl, int valid);
template <typename T>
void vocab_cross_entropy_backward(T* logits, const T* row_max, const T* stats, const int32_t* targets,
                                  const T* weight, int v0, int M, int Vl, int valid);
}  // namespace cuda

}  // namespace lora
