// The element-wise half of the CPU backend's fused LM head + cross-entropy (issue 25, as
// Liger Kernel's fused linear cross-entropy and Apple's Cut Cross-Entropy): model/gpt.cpp
// (GptModel::lm_head_loss_fused) walks tiles of [rows x vocabulary columns] small enough for
// L2, runs each tile's logits GEMM and its dX GEMM, and calls these between them while the tile
// is hot. No chunk x V/tp logits buffer exists. CPU only: the CUDA backend keeps the chunked
// path of model/ops/cross_entropy.h.
//
// The dX of a row is accumulated flash-attention style, unnormalised against the running
// (rank-local) maximum:  acc = sum_v exp(l_v - m_local) W_v, rescaled when m_local grows; once
// the TP all-reduces give the global max m and sum-exp S,  dX = w (acc exp(m_local - m) / S
// - W_target)  (the target row only on the rank whose vocabulary slice holds it), which is
// w (softmax - onehot) W exactly, as a TP partial sum like the unfused path's.
#pragma once
#include <cstdint>

#include "model/dtype.h"

namespace lora {

// The tile: rows x vocabulary columns of logits (1 MiB in fp32, in Zen 3's L2 + its 4 MiB L3
// slice) and the [cols x d] slice of the head its two GEMMs share (1.5 MiB at d 768), walked
// vocabulary-outer so each slice of the head is read from memory once per 1024-row chunk. At
// GPT-2 124M (B 4 x T 256, 1 thread, docs/performance.md) 512 x 512 took the LM head's share of
// the step from 32.5-33 % to 30.8-31.3 %; 128 x 512 (256 KiB, all in L2) left it at 31.8 %:
// the GEMMs want rows more than the tile wants L2. LORA_LM_TILE=ROWSxCOLS overrides it (a
// measuring knob: model/memory_estimate.cpp counts the default).
constexpr int kLmTileRows = 512;
constexpr int kLmTileCols = 512;
struct LmTileShape {
  int rows, cols;
};
LmTileShape lm_tile_shape();  // the default, or LORA_LM_TILE's

// tile [rows x cols]: the logits of the rank's local vocabulary columns [c0, c0 + cols) (all
// real, none of the shard's padding) for `rows` rows; overwritten with exp(logit - m_new), m_new
// each row's running maximum after this tile. run_max[i], run_stats[2i] (sum exp against
// run_max), run_stats[2i + 1] (the target's logit, or 0) are the rows' running statistics:
// `first` starts them. target_local[i]: the row's target minus the shard's first vocabulary id.
// acc [rows x d] (or nullptr: no gradient): the rows' dX accumulators, rescaled by
// exp(m_old - m_new) where the maximum grew (not read when `first`: the caller's GEMM then
// overwrites them).
template <typename T>
void lm_tile_online_softmax(T* tile, int rows, int cols, int c0, const int32_t* target_local, T* run_max,
                            T* run_stats, T* acc, int d, bool first);

// After the TP all-reduces: acc[i] = weight[i] (acc[i] exp(local_max[i] - global_max[i]) /
// stats[2i] - [0 <= target_local[i] < valid] head[target_local[i]]), the row's input gradient.
template <typename T>
void lm_rows_finalize(T* acc, int rows, int d, const T* local_max, const T* global_max, const T* stats,
                      const T* weight, const int32_t* target_local, int valid, WeightView<T> head);

}  // namespace lora
