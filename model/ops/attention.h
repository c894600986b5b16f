// Causal multi-head self-attention over the heads this TP rank holds, grouped-query when
// Hkv < Hl (Ainslie et al. 2023): query head h reads KV head h / (Hl / Hkv); GPT has Hkv = Hl.
// qkv is the fused projection's output, one row per token: [q | k | v], q Hl*hd wide, k and v
// Hkv*hd each, head h at columns h*hd of its part. The output att[B*T x Hl*hd] has q's layout.
//
// Blocked (flash-attention) kernel: the T x T probabilities are never stored. Forward runs an
// online softmax over key blocks at or below the diagonal and saves only the output and each
// row's log-sum-exp; backward recomputes the probabilities block by block from them.
#pragma once

namespace lora {

// Rows per query block and per key block. 64 by measurement on the GPT-2 small bench (T = 256,
// 2 threads): forward ~155 ms in both runs; 128 gave 131-164 ms forward and 219-281 ms backward
// against 64's 244-254 ms, no clear gain for a coarser causal skip.
constexpr int kAttentionBlock = 64;

// lse[B x Hl x T] keeps each query row's log-sum-exp of its scaled scores for backward.
template <typename T>
void attention_forward(T* att, T* lse, const T* qkv, int B, int Tn, int Hl, int Hkv, int hd);

// dqkv[B*T x (Hl + 2 Hkv)*hd] = the gradient of qkv given datt; overwrites dqkv. The gradient
// of a KV head is summed over the query heads of its group.
// att and lse are attention_forward's outputs for this qkv.
template <typename T>
void attention_backward(T* dqkv, const T* datt, const T* qkv, const T* att, const T* lse, int B, int Tn, int Hl,
                        int Hkv, int hd);

// Incremental decoding with a KV cache: n new query rows of one sequence, at positions
// pos0 .. pos0+n-1, attend over the keys and values of positions 0 .. pos0+n-1 in the cache
// (the new rows' own k and v already appended). q has row stride ldq (the fused qkv's
// (Hl + 2 Hkv)*hd); k_cache, v_cache are [capacity x Hkv*hd]; att is [n x Hl*hd]. No backward: the
// cache serves generation only.
template <typename T>
void attention_forward_cached(T* att, const T* q, int ldq, const T* k_cache, const T* v_cache, int n, int pos0, int Hl,
                              int Hkv, int hd);

// The CUDA twins (model/ops/cuda/attention.cu and attention_cached.cu; one warp per row, the
// same online softmax, no T x T buffer either): the same signatures over device pointers,
// float only; the CPU functions above are the reference they are tested against.
namespace cuda {
template <typename T>
void attention_forward(T* att, T* lse, const T* qkv, int B, int Tn, int Hl, int Hkv, int hd);
template <typename T>
void attention_backward(T* dqkv, const T* datt, const T* qkv, const T* att, const T* lse, int B, int Tn, int Hl,
                        int Hkv, int hd);
template <typename T>
void attention_forward_cached(T* att, const T* q, int ldq, const T* k_cache, const T* v_cache, int n, int pos0, int Hl,
                              int Hkv, int hd);
}  // namespace cuda

}  // namespace lora
