#include <cmath>

#include "model/ops/attention.h"
#include "model/ops/cuda/cuda_check.h"
#include "model/ops/cuda/device.h"
#include "model/ops/cuda/attention_common.cuh"

// Causal attention without a T x T buffer, as the CPU's blocked kernel: the forward keeps an
// online softmax (running max m, running sum l) per query row and saves the output and its
// log-sum-exp; the backward recomputes each probability from the log-sum-exp.
// One warp owns one row (attention_common.cuh). Grouped-query: query head h reads KV head
// h / group; the dk/dv pass gives one warp to each KV head's key row and sums its group.
namespace lora::cuda {

namespace {
// Where a sequence's rows of the fused [q | k | v] start, and the widths in them.
struct QkvLayout {
  int dl, kvl, ld, group;
  __device__ QkvLayout(int Hl, int Hkv, int hd) : dl(Hl * hd), kvl(Hkv * hd), ld(Hl * hd + 2 * Hkv * hd), group(Hl / Hkv) {}
  __device__ size_t k_col(int h, int hd) const { return dl + size_t(h / group) * hd; }  // query head h's key
};

__global__ void attention_forward_kernel(float* att, float* lse, const float* qkv, int B, int Tn, int Hl, int Hkv, int hd,
                                         float scale) {
  const RowIndex r = warp_row(B, Hl, Tn);
  if (!r.valid) return;
  const QkvLayout L(Hl, Hkv, hd);
  const int lane = threadIdx.x % 32;
  const float* seq = qkv + size_t(r.b) * Tn * L.ld;
  const float* q = seq + size_t(r.i) * L.ld + r.h * hd;
  float o[kMaxPerLane] = {};
  float m = -INFINITY, l = 0;
  for (int j = 0; j <= r.i; ++j) {
    const float* k = seq + size_t(j) * L.ld + L.k_col(r.h, hd);
    const float* v = k + L.kvl;
    const float s = dot(q, k, hd) * scale;
    const float mx = fmaxf(m, s), alpha = expf(m - mx), p = expf(s - mx);
    l = l * alpha + p;
    m = mx;
    for (int e = 0, c = lane; e < kMaxPerLane && c < hd; ++e, c += 32) o[e] = o[e] * alpha + p * v[c];
  }
  float* out = att + (size_t(r.b) * Tn + r.i) * L.dl + r.h * hd;
  for (int e = 0, c = lane; e < kMaxPerLane && c < hd; ++e, c += 32) out[c] = o[e] / l;
  if (lane == 0) lse[(size_t(r.b) * Hl + r.h) * Tn + r.i] = m + logf(l);
}

// dq_i = scale * sum_{j <= i} dS_ij k_j with dS = P (dP - D_i), dP_ij = dO_i . v_j, and
// D_i = dO_i . O_i, which it also stores for the dk/dv pass.
__global__ void attention_dq_kernel(float* dqkv, float* D, const float* datt, const float* qkv, const float* att,
                                    const float* lse, int B, int Tn, int Hl, int Hkv, int hd, float scale) {
  const RowIndex r = warp_row(B, Hl, Tn);
  if (!r.valid) return;
  const QkvLayout L(Hl, Hkv, hd);
  const int lane = threadIdx.x % 32;
  const size_t row = size_t(r.b) * Tn + r.i, bh_row = (size_t(r.b) * Hl + r.h) * Tn + r.i;
  const float* seq = qkv + size_t(r.b) * Tn * L.ld;
  const float* q = seq + size_t(r.i) * L.ld + r.h * hd;
  const float* dout = datt + row * L.dl + r.h * hd;
  const float Di = dot(dout, att + row * L.dl + r.h * hd, hd), ls = lse[bh_row];
  float dq[kMaxPerLane] = {};
  for (int j = 0; j <= r.i; ++j) {
    const float* k = seq + size_t(j) * L.ld + L.k_col(r.h, hd);
    const float p = expf(dot(q, k, hd) * scale - ls);
    const float ds = p * (dot(dout, k + L.kvl, hd) - Di);
    for (int e = 0, c = lane; e < kMaxPerLane && c < hd; ++e, c += 32) dq[e] += ds * k[c];
  }
  float* out = dqkv + row * L.ld + r.h * hd;
  for (int e = 0, c = lane; e < kMaxPerLane && c < hd; ++e, c += 32) out[c] = dq[e] * scale;
  if (lane == 0) D[bh_row] = Di;
}

// dk_j = scale * sum_h sum_{i >= j} dS_ij q_i and dv_j = sum_h sum_{i >= j} P_ij dO_i, over the
// query heads h of the KV head's group.
__global__ void attention_dkdv_kernel(float* dqkv, const float* D, const float* datt, const float* qkv,
                                      const float* lse, int B, int Tn, int Hl, int Hkv, int hd, float scale) {
  const RowIndex r = warp_row(B, Hkv, Tn);  // r.h is the KV head, r.i the key row j
  if (!r.valid) return;
  const QkvLayout L(Hl, Hkv, hd);
  const int lane = threadIdx.x % 32;
  const float* seq = qkv + size_t(r.b) * Tn * L.ld;
  const float* k = seq + size_t(r.i) * L.ld + L.dl + size_t(r.h) * hd;
  const float* v = k + L.kvl;
  float dk[kMaxPerLane] = {}, dv[kMaxPerLane] = {};
  for (int h = r.h * L.group; h < (r.h + 1) * L.group; ++h) {
    const size_t bh = size_t(r.b) * Hl + h;
    for (int i = r.i; i < Tn; ++i) {
      const float* q = seq + size_t(i) * L.ld + h * hd;
      const float* dout = datt + (size_t(r.b) * Tn + i) * L.dl + h * hd;
      const float p = expf(dot(q, k, hd) * scale - lse[bh * Tn + i]);
      const float ds = p * (dot(dout, v, hd) - D[bh * Tn + i]);
      for (int e = 0, c = lane; e < kMaxPerLane && c < hd; ++e, c += 32) {
        dk[e] += ds * q[c];
        dv[e] += p * dout[c];
      }
    }
  }
  float* out = dqkv + (size_t(r.b) * Tn + r.i) * L.ld + L.dl + size_t(r.h) * hd;
  for (int e = 0, c = lane; e < kMaxPerLane && c < hd; ++e, c += 32) {
    out[c] = dk[e] * scale;
    out[L.kvl + c] = dv[e];
  }
}

}  // namespace

template <>
void attention_forward<float>(float* att, float* lse, const float* qkv, int B, int Tn, int Hl, int Hkv, int hd) {
  check_head_dim(hd);
  const long rows = long(B) * Hl * Tn;
  if (rows == 0) return;
  attention_forward_kernel<<<warp_blocks(rows), 32 * kWarpsPerBlock, 0, compute_stream()>>>(
      att, lse, qkv, B, Tn, Hl, Hkv, hd, 1.0f / std::sqrt(float(hd)));
  LORA_CUDA_CHECK_LAUNCH("attention_forward_kernel");
}

template <>
void attention_backward<float>(float* dqkv, const float* datt, const float* qkv, const float* att, const float* lse,
                               int B, int Tn, int Hl, int Hkv, int hd) {
  check_head_dim(hd);
  const long rows = long(B) * Hl * Tn, kv_rows = long(B) * Hkv * Tn;
  if (rows == 0) return;
  const float scale = 1.0f / std::sqrt(float(hd));
  float* D = static_cast<float*>(scratch(rows * sizeof(float), 1));
  attention_dq_kernel<<<warp_blocks(rows), 32 * kWarpsPerBlock, 0, compute_stream()>>>(dqkv, D, datt, qkv, att, lse,
                                                                                      B, Tn, Hl, Hkv, hd, scale);
  LORA_CUDA_CHECK_LAUNCH("attention_dq_kernel");
  attention_dkdv_kernel<<<warp_blocks(kv_rows), 32 * kWarpsPerBlock, 0, compute_stream()>>>(dqkv, D, datt, qkv, lse,
                                                                                           B, Tn, Hl, Hkv, hd, scale);
  LORA_CUDA_CHECK_LAUNCH("attention_dkdv_kernel");
}

}  // namespace lora::cuda
