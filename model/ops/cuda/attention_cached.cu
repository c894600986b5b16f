#include <cmath>

#include "model/ops/attention.h"
#include "model/ops/cuda/attention_common.cuh"
#include "model/ops/cuda/device.h"

namespace lora::cuda {

// One warp per (new query row, head): an online softmax over the row's pos0 + i + 1 cached
// keys, as the training kernel's forward; nothing of size T x T here either.
namespace {
__global__ void attention_cached_kernel(float* att, const float* q, int ldq, const float* k_cache,
                                        const float* v_cache, int n, int pos0, int Hl, int Hkv, int hd, float scale) {
  const RowIndex r = warp_row(1, Hl, n);
  if (!r.valid) return;
  const int lane = threadIdx.x % 32, dl = Hl * hd, kvl = Hkv * hd;
  const size_t kv_col = size_t(r.h / (Hl / Hkv)) * hd;  // grouped-query: this head's KV head
  const float* qi = q + size_t(r.i) * ldq + r.h * hd;
  float o[kMaxPerLane] = {};
  float m = -INFINITY, l = 0;
  for (int j = 0; j <= pos0 + r.i; ++j) {  // causal: positions 0 .. pos0 + i
    const float s = dot(qi, k_cache + size_t(j) * kvl + kv_col, hd) * scale;
    const float* v = v_cache + size_t(j) * kvl + kv_col;
    const float mx = fmaxf(m, s), alpha = expf(m - mx), p = expf(s - mx);
    l = l * alpha + p;
    m = mx;
    for (int e = 0, c = lane; e < kMaxPerLane && c < hd; ++e, c += 32) o[e] = o[e] * alpha + p * v[c];
  }
  float* out = att + size_t(r.i) * dl + r.h * hd;
  for (int e = 0, c = lane; e < kMaxPerLane && c < hd; ++e, c += 32) out[c] = o[e] / l;
}
}  // namespace

template <>
void attention_forward_cached<float>(float* att, const float* q, int ldq, const float* k_cache, const float* v_cache,
                                     int n, int pos0, int Hl, int Hkv, int hd) {
  check_head_dim(hd);
  if (n == 0) return;
  attention_cached_kernel<<<warp_blocks(long(n) * Hl), 32 * kWarpsPerBlock, 0, compute_stream()>>>(
      att, q, ldq, k_cache, v_cache, n, pos0, Hl, Hkv, hd, 1.0f / std::sqrt(float(hd)));
  LORA_CUDA_CHECK_LAUNCH("attention_cached_kernel");
}

}  // namespace lora::cuda
