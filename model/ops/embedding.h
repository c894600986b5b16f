// Token + position embedding (tables in the model's type or bf16, widened on reading). With
// LoRA both tables are frozen and the gradient stops at the residual stream's first entry;
// full fine-tuning trains them (embedding_backward, positions_backward).
#pragma once
#include <cstdint>

#include "model/ops/linear.h"

namespace lora {

// x[M x d] = wte_local[token - v0] for tokens in this rank's vocabulary slice [v0, v0+Vl),
// 0 otherwise; the TP all-reduce that follows completes every row (DESIGN §3).
template <typename T>
void embedding_forward(T* x, const int32_t* tokens, WeightArg<T> wte_local, int v0, int Vl, int M, int d);

// x[b, t, :] += wpe[pos0 + t, :] for B sequences of Tn tokens whose first is at position
// pos0 (0 in training; the cache's length when decoding with a KV cache).
template <typename T>
void add_positions(T* x, WeightArg<T> wpe, int B, int Tn, int d, int pos0);

// dwte_local[token - v0] += dx[i] for the tokens in this rank's vocabulary slice (the
// forward's all-reduce has the identity as its backward: every rank sees the whole dx).
template <typename T>
void embedding_backward(T* dwte_local, const T* dx, const int32_t* tokens, int v0, int Vl, int M, int d);

// dwpe[pos0 + t] += dx[b, t] summed over the B sequences.
template <typename T>
void positions_backward(T* dwpe, const T* dx, int B, int Tn, int d, int pos0);

// The CUDA twin (model/ops/cuda/embedding.cu): the same signatures over device pointers,
// float only; the CPU functions above are the reference it is tested against.
namespace cuda {
template <typename T>
void embedding_forward(T* x, const int32_t* tokens, WeightArg<T> wte_local, int v0, int Vl, int M, int d);
template <typename T>
void add_positions(T* x, WeightArg<T> wpe, int B, int Tn, int d, int pos0);
template <typename T>
void embedding_backward(T* dwte_local, const T* dx, const int32_t* tokens, int v0, int Vl, int M, int d);
template <typename T>
void positions_backward(T* dwpe, const T* dx, int B, int Tn, int d, int pos0);
}  // namespace cuda

}  // namespace lora
