// Megatron's tensor-parallel linear layers over frozen weights (core/tensor_parallel/layers.py),
// each with its LoRA slices (DESIGN §3, §4), or trained whole in full fine-tuning (dW, db set).
// The collective of each layer is named at its call; the weight gradients need none.
//
// ColumnParallelLinear: x replicated over TP, W's output rows sharded; y_local = x W_local^T + b_local.
//   LoRA: A replicated, B row-sharded. Forward: no comm. Backward: the partial dX of every
//   TP rank (base and LoRA parts together) is summed by copy_to_tp_region_backward.
// RowParallelLinear: x sharded by features, W's input columns sharded; y = sum_tp x_local W_local^T, + b.
//   LoRA: A column-sharded, B replicated; its partial output rides the same all-reduce.
//   Backward: no comm (dX stays sharded like x).
#pragma once
#include <algorithm>
#include <vector>

#include "comm/tp_regions.h"
#include "model/lora_adapter.h"

namespace lora {

template <typename T>
struct ColumnParallelLinear {
  const ComputeOps<T>* ops = nullptr;  // the backend its buffers live in
  WeightView<T> W;       // [N x K], this rank's output rows (model type or bf16)
  const T* b = nullptr;  // [N]; null: no bias
  T *dW = nullptr, *db = nullptr;  // full fine-tuning only: gradients of this rank's W and b (local)
  int K = 0, N = 0;
  std::vector<LoraAdapter<T>> lora;  // q, k and v are three slices of one fused layer
  bool merged = false;

  void forward(T* y, const T* x, int M, const DropoutContext& ctx) {
    ops->linear_forward(y, x, W, b, M, K, N);
    if (!merged)
      for (auto& a : lora) a.forward(y, N, x, M, ctx);
  }

  // dx is the full input gradient after the call; with need_dx false only the LoRA
  // gradients are computed (the first layer's input gradient feeds a frozen embedding).
  void backward(T* dx, const T* dy, const T* x, int M, const DropoutContext& ctx, Communicator& comm,
                bool need_dx) {
    if (dW) ops->linear_backward_weight(dW, db, dy, x, M, K, N);
    if (need_dx) ops->linear_backward_input(dx, dy, W, M, K, N, /*accumulate=*/false);
    for (auto& a : lora) a.backward(need_dx ? dx : nullptr, dy, N, x, M, ctx);
    if (need_dx) copy_to_tp_region_backward(comm, dx, static_cast<size_t>(M) * K);
  }

  void merge(bool on) {
    if (on == merged) return;
    for (const auto& a : lora) a.merge_into(W, on ? T(1) : T(-1));
    merged = on;
  }
};

template <typename T>
struct RowParallelLinear {
  const ComputeOps<T>* ops = nullptr;  // the backend its buffers live in
  WeightView<T> W;       // [N x K_local], this rank's input columns (model type or bf16)
  const T* b = nullptr;  // [N], replicated, added once after the reduction; null: no bias
  // Full fine-tuning only: dW local; db replicated, and whole on every TP rank (dy is).
  T *dW = nullptr, *db = nullptr;
  int K = 0, N = 0;      // K is the local input width
  std::vector<LoraAdapter<T>> lora;
  bool merged = false;

  void forward(T* y, const T* x, int M, const DropoutContext& ctx, Communicator& comm) {
    ops->linear_forward(y, x, W, nullptr, M, K, N);
    if (!merged)
      for (auto& a : lora) a.forward(y, N, x, M, ctx);
    reduce_from_tp_region(comm, y, static_cast<size_t>(M) * N);
    if (b) ops->add_bias(y, b, M, N);
  }

  // A recompute (train.recompute: full) of a layer whose output the backward does not need:
  // the LoRA branches' saved activations only, no base GEMM and no all-reduce.
  void recompute_saved(const T* x, int M, const DropoutContext& ctx) {
    if (!merged)
      for (auto& a : lora) a.forward_saved_only(x, M, ctx);
  }

  void backward(T* dx, const T* dy, const T* x, int M, const DropoutContext& ctx) {
    if (dW) ops->linear_backward_weight(dW, db, dy, x, M, K, N);
    ops->linear_backward_input(dx, dy, W, M, K, N, /*accumulate=*/false);
    for (auto& a : lora) a.backward(dx, dy, N, x, M, ctx);
  }

  void merge(bool on) {
    if (on == merged) return;
    for (const auto& a : lora) a.merge_into(W, on ? T(1) : T(-1));
    merged = on;
  }
};

}  // namespace lora
