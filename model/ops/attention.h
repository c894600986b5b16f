// Causal multi-head self-attention over the heads this TP rank holds.
// qkv is the fused projection's output, one row per token: [q | k | v], each Hl*hd wide,
// head h at columns h*hd. The output att[B*T x Hl*hd] has the same head layout as q.
#pragma once

namespace lora {

// P[B x Hl x T x T] keeps the softmax probabilities for backward (zero above the diagonal).
template <typename T>
void attention_forward(T* att, T* P, const T* qkv, int B, int Tn, int Hl, int hd);

// dqkv[B*T x 3*Hl*hd] = the gradient of qkv given datt; overwrites dqkv.
template <typename T>
void attention_backward(T* dqkv, const T* datt, const T* qkv, const T* P, int B, int Tn, int Hl, int hd);

}  // namespace lora
