// One LoRA pair (A, B) attached to a frozen linear layer's output columns
// [out_col, out_col + N): the PEFT LoraLayer, reduced to what a hand-written backward needs.
// Holds views into the model's LoRA parameter and gradient buffers and its own saved
// activations (u, and the dropped-out input when dropout is on).
#pragma once
#include <vector>

#include "model/dtype.h"
#include "model/ops/dropout.h"
#include "model/ops/lora.h"

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

  std::vector<T> u, x_drop, dx_drop, du;  // saved / scratch, sized for the largest M

  void reserve(int max_M) {
    u.resize(static_cast<size_t>(max_M) * r);
    du.resize(static_cast<size_t>(max_M) * r);
    if (dropout > 0) {
      x_drop.resize(static_cast<size_t>(max_M) * K);
      dx_drop.resize(static_cast<size_t>(max_M) * K);
    }
  }

  DropoutKey key(const DropoutContext& ctx) const {
    return DropoutKey{ctx.seed, ctx.step, site, ctx.first_token, first_feature};
  }
  bool drops(const DropoutContext& ctx) const { return ctx.training && dropout > 0; }

  // y[:, out_col : out_col+N] (row stride ldy) += scale * B A dropout(x).
  void forward(T* y, int ldy, const T* x, int M, const DropoutContext& ctx) {
    const T* xa = x;
    if (drops(ctx)) {
      dropout_forward(x_drop.data(), x, M, K, dropout, key(ctx));
      xa = x_drop.data();
    }
    lora_forward(y + out_col, ldy, u.data(), xa, A, B, M, K, N, r, scale);
  }

  // Accumulates dA, dB; adds this branch's input gradient to dx unless dx is null.
  void backward(T* dx, const T* dy, int ldy, const T* x, int M, const DropoutContext& ctx) {
    if (!drops(ctx)) {
      lora_backward(dx, dA, dB, du.data(), dy + out_col, ldy, x, u.data(), A, B, M, K, N, r, scale);
      return;
    }
    std::fill(dx_drop.begin(), dx_drop.begin() + static_cast<size_t>(M) * K, T(0));
    lora_backward(dx ? dx_drop.data() : nullptr, dA, dB, du.data(), dy + out_col, ldy, x_drop.data(), u.data(),
                  A, B, M, K, N, r, scale);
    if (dx) dropout_backward(dx, dx_drop.data(), M, K, dropout, key(ctx));
  }

  // W (this rank's [N_total x K] block, its rows from out_col on) += sign * scale * B A.
  // A bf16 W is widened, merged and rounded back (round-to-nearest-even): with model.dtype
  // bf16, merging and unmerging are exact only to bf16 round-off.
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
