// The LoRA branch of one linear layer (Hu et al. 2021; DESIGN §4):
//   y += s * B A x,  A [r x K], B [N x r], s = alpha/r (or alpha/sqrt(r) with rsLoRA).
// x is the (possibly dropped-out) input of A; u = x A^T [M x r] is kept for backward.
// y and dy may be a column block of a wider row (ldy), as q, k and v are inside the fused QKV.
#pragma once

namespace lora {

// u = x A^T;  y[:, 0:N] += s * u B^T.
template <typename T>
void lora_forward(T* y, int ldy, T* u, const T* x, const T* A, const T* B, int M, int K, int N, int r, T s);

// u = x A^T alone: what a recompute needs of a layer whose output the backward does not use.
template <typename T>
void lora_down_forward(T* u, const T* x, const T* A, int M, int K, int r);

// du = s * dy B;  dB += s * dy^T u;  dA += du^T x;  dx += du A (skipped when dx is null).
// dA and dB accumulate, so gradient accumulation over micro-batches is free.
template <typename T>
void lora_backward(T* dx, T* dA, T* dB, T* du, const T* dy, int ldy, const T* x, const T* u, const T* A,
                   const T* B, int M, int K, int N, int r, T s);

// W[N x K] += s * B A; merge with s, unmerge with -s. Inference then costs nothing extra.
template <typename T>
void lora_merge(T* W, const T* A, const T* B, int K, int N, int r, T s);

// The CUDA twin (model/ops/cuda/lora.cu) (cuBLAS, fp32): the same signatures over device pointers,
// float only; the CPU functions above are the reference it is tested against.
namespace cuda {
template <typename T>
void lora_forward(T* y, int ldy, T* u, const T* x, const T* A, const T* B, int M, int K, int N, int r, T s);
template <typename T>
void lora_down_forward(T* u, const T* x, const T* A, int M, int K, int r);
template <typename T>
void lora_backward(T* dx, T* dA, T* dB, T* du, const T* dy, int ldy, const T* x, const T* u, const T* A,
                   const T* B, int M, int K, int N, int r, T s);
template <typename T>
void lora_merge(T* W, const T* A, const T* B, int K, int N, int r, T s);
}  // namespace cuda

}  // namespace lora
