// Token + position embedding (tables in the model's type or bf16, widened on reading). Both tables are frozen, so there is no backward:
// the gradient stops at the residual stream's first entry.
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

}  // namespace lora
