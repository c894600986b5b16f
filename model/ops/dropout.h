// Inverted dropout on the input of a LoRA A matrix, with masks drawn from Philox keyed by
// (seed, step, site, global token, global feature) (DESIGN §5), so a token's mask is the
// same whatever the tp/dp layout and micro-batch split. The mask is recomputed in backward
// instead of stored.
#pragma once
#include <cstdint>

#include "model/rng.h"

namespace lora {

struct DropoutKey {
  uint64_t seed = 0;
  uint32_t step = 0;
  uint32_t site = 0;           // layer * kNumTargets + LoRA target
  uint32_t first_token = 0;    // global token index (within the step's global batch) of row 0
  uint32_t first_feature = 0;  // global input-feature index of column 0 (TP-sharded inputs)
};

// Whether element (row, col) of the input is kept: one Philox call yields the flags of 4
// consecutive global features. Shared by the CPU loop and the CUDA kernel, so both backends
// drop the same elements.
LORA_HOST_DEVICE inline bool dropout_keep(const DropoutKey& k, int row, int col, float p) {
  const uint32_t feature = k.first_feature + static_cast<uint32_t>(col);
  const auto r = philox(k.seed, static_cast<uint32_t>(RngPurpose::Dropout) << 24 | k.site, k.step,
                        k.first_token + static_cast<uint32_t>(row), feature / 4);
  return uniform01(r[feature % 4]) >= p;
}

// out[M x K] = x * keep / (1 - p).
template <typename T>
void dropout_forward(T* out, const T* x, int M, int K, float p, const DropoutKey& key);

// dx[M x K] += dout * keep / (1 - p).
template <typename T>
void dropout_backward(T* dx, const T* dout, int M, int K, float p, const DropoutKey& key);

// The CUDA twins (model/ops/cuda/dropout.cu): device pointers, the same masks.
namespace cuda {
template <typename T>
void dropout_forward(T* out, const T* x, int M, int K, float p, const DropoutKey& key);
template <typename T>
void dropout_backward(T* dx, const T* dout, int M, int K, float p, const DropoutKey& key);
}  // namespace cuda

}  // namespace lora
