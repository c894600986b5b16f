// What the training and the cached (decoding) attention kernels share: one warp per row, the
// 32 lanes holding the head dimension (lane + 32 e, e < kMaxPerLane), scores reduced across
// the warp.
#pragma once
#include <string>

#include "model/ops/cuda/cuda_check.h"
#include "model/ops/cuda/launch.h"

namespace lora::cuda {

constexpr int kMaxPerLane = 8;  // head dimension up to 256
constexpr int kWarpsPerBlock = 4;

struct RowIndex {
  int b, h, i;  // sequence, head, row (query row in forward and dq, key row in dk/dv)
  bool valid;
};

// The row of this thread's warp among B x Hl x Tn rows.
__device__ inline RowIndex warp_row(int B, int Hl, int Tn) {
  const long w = (long(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int i = static_cast<int>(w % Tn), bh = static_cast<int>(w / Tn);
  return {bh / Hl, bh % Hl, i, w < long(B) * Hl * Tn};
}

// a . b over hd elements, in every lane of the warp.
__device__ inline float dot(const float* a, const float* b, int hd) {
  float s = 0;
  for (int c = threadIdx.x % 32; c < hd; c += 32) s += a[c] * b[c];
  return warp_sum(s);
}

inline unsigned warp_blocks(long rows) { return static_cast<unsigned>((rows + kWarpsPerBlock - 1) / kWarpsPerBlock); }

inline void check_head_dim(int hd) {
  if (hd > 32 * kMaxPerLane)
    throw CudaError("CUDA attention: head dimension " + std::to_string(hd) + " above the kernel's " +
                    std::to_string(32 * kMaxPerLane));
}

}  // namespace lora::cuda
