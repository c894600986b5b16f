// One LoRA pair (A, B) attached to a frozen linear layer's output columns
// [out_col, out_col + N): the PEFT LoraLayer, reduced to what a hand-written backward needs.
// Holds views into the model's LoRA parameter and gradient buffers, into the block's saved
// activations (u, and the dropped-out input when dropout is on) and into scratch the model
// shares between all adapters (the backward runs one adapter at a time).
#pragma once
#include <vector>

#include "model/compute_ops.h"
#include "model/dtype.h"

namespace lora {

// What a forward needs to know to draw dropout masks (DESIGN §5).
struct DropoutContext {
  bool training = false;
  uint64_t seed = 0;
  uint32_t step = 0;
  uint32_t first_token = 0;  // global token index (in the step's global batch) of row 0
};

template <typename T>
struct LoraAdapter {
  const ComputeOps<T>* ops = nullptr;  // the backend its buffers live in
  const T* A = nullptr;  // [r x K] (this rank's columns, for a row-parallel base)
  const T* B = nullptr;  // [N x r] (this rank's rows, for a column-parallel base)
  T* dA = nullptr;
  T* dB = nullptr;
  int K = 0, N = 0, r = 0;
  int out_col = 0;          // first output column inside the base layer's (local) output
  uint32_t first_feature = 0;  // global input feature of local column 0
  uint32_t site = 0;        // dropout stream: layer * kNumTargets + target
  T scale = 0;
  float dropout = 0;

  // Saved for backward, [max_M x r] and (with dropout) [max_M x K]; the model points them
  // into the block's activations, so with train.recompute full every layer shares one set.
  T* u = nullptr;
  T* x_drop = nullptr;
  T* du = nullptr;       // scratch [max_M x r]
  T* dx_drop = nullptr;  // scratch [max_M x K], with dropout

  // Elements of the saved buffers: u, then x_drop.
  static size_t saved_size(int max_M, int r, int K, float dropout) {
    return static_cast<size_t>(max_M) * r + (dropout > 0 ? static_cast<size_t>(max_M) * K : 0);
  }

  DropoutKey key(const DropoutContext& ctx) const {
    return DropoutKey{ctx.seed, ctx.step, site, ctx.first_token, first_feature};
  }
  bool drops(const DropoutContext& ctx) const { return ctx.training && dropout > 0; }

  // y[:, out_col : out_col+N] (row stride ldy) += scale * B A dropout(x).
  void forward(T* y, int ldy, const T* x, int M, const DropoutContext& ctx) {
    const T* xa = x;
    if (drops(ctx)) {
      ops->dropout_forward(x_drop, x, M, K, dropout, key(ctx));
      xa = x_drop;
    }
    ops->lora_forward(y + out_col, ldy, u, xa, A, B, M, K, N, r, scale);
  }

  // Only what forward saves for the backward (the dropped-out input and u), adding nothing
  // to the output: the recompute of a layer whose output the backward does not need.
  void forward_saved_only(const T* x, int M, const DropoutContext& ctx) {
    const T* xa = x;
    if (drops(ctx)) {
      ops->dropout_forward(x_drop, x, M, K, dropout, key(ctx));
      xa = x_drop;
    }
    ops->lora_down_forward(u, xa, A, M, K, r);
  }

  // Accumulates dA, dB; adds this branch's input gradient to dx unless dx is null.
  void backward(T* dx, const T* dy, int ldy, const T* x, int M, const DropoutContext& ctx) {
    if (!drops(ctx)) {
      ops->lora_backward(dx, dA, dB, du, dy + out_col, ldy, x, u, A, B, M, K, N, r, scale);
      return;
    }
    ops->memory->zero(dx_drop, static_cast<size_t>(M) * K * sizeof(T));
    ops->lora_backward(dx ? dx_drop : nullptr, dA, dB, du, dy + out_col, ldy, x_drop, u, A, B, M, K, N, r, scale);
    if (dx) ops->dropout_backward(dx, dx_drop, M, K, dropout, key(ctx));
  }

  // W (this rank's [N_total x K] block, its rows from out_col on) += sign * scale * B A.
  // A bf16 W is widened, merged and rounded back (round-to-nearest-even): with model.dtype
  // bf16, merging and unmerging are exact only to bf16 round-off. Host memory only (the CPU
  // backend's buffers; GptModel::merge_lora refuses the others).
  void merge_into(WeightView<T> W, T sign) const {
    const size_t first = static_cast<size_t>(out_col) * K, n = static_cast<size_t>(N) * K;
    if (!W.is_bf16()) {
      lora_merge(const_cast<T*>(W.native()) + first, A, B, K, N, r, sign * scale);
      return;
    }
    uint16_t* w = const_cast<uint16_t*>(W.bf16()) + first;
    std::vector<T> wide(n);
    for (size_t i = 0; i < n; ++i) wide[i] = static_cast<T>(bf16_to_float(w[i]));
    lora_merge(wide.data(), A, B, K, N, r, sign * scale);
    for (size_t i = 0; i < n; ++i) w[i] = float_to_bf16(static_cast<float>(wide[i]));
  }
};

}  // namespace lora
