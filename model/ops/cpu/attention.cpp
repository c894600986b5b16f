#include "model/ops/attention.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <vector>

#include "model/ops/cpu/fast_math.h"
#include "model/ops/cpu/gemm.h"

namespace lora {

// Each (sequence, head) pair is independent: OpenMP over pairs, one-thread GEMMs inside,
// which beats threading each small GEMM (../shared/anchors README, per-head rows).
// Query and key blocks are both kAttentionBlock rows and start at the same offsets, so key
// block jb <= query block ib, and only the diagonal block (jb == ib) needs the causal mask:
// there row r sees columns c <= r.

namespace {
constexpr int kB = kAttentionBlock;
}  // namespace

template <typename T>
void attention_forward(T* att, T* lse, const T* qkv, int B, int Tn, int Hl, int Hkv, int hd) {
  const int dl = Hl * hd, kvl = Hkv * hd, ld = dl + 2 * kvl, group = Hl / Hkv;
  const T scale = T(1) / std::sqrt(T(hd));
  const T neg_inf = -std::numeric_limits<T>::infinity();
  const int nblocks = (Tn + kB - 1) / kB;
#pragma omp parallel
  {
    // Kept across calls: no allocation per call.
    thread_local std::vector<T> s_buf, m_buf, l_buf;
    s_buf.resize(static_cast<size_t>(kB) * kB);
    m_buf.resize(kB);
    l_buf.resize(kB);
    T *s = s_buf.data(), *m = m_buf.data(), *l = l_buf.data();
#pragma omp for schedule(dynamic)
    for (int bh = 0; bh < B * Hl; ++bh) {
      const int b = bh / Hl, h = bh % Hl;
      const T* q = qkv + static_cast<size_t>(b) * Tn * ld + h * hd;
      const T* k = qkv + static_cast<size_t>(b) * Tn * ld + dl + (h / group) * hd;
      const T* v = k + kvl;
      T* out = att + static_cast<size_t>(b) * Tn * dl + h * hd;
      T* lse_bh = lse + static_cast<size_t>(bh) * Tn;
      for (int ib = 0; ib < nblocks; ++ib) {
        const int i0 = ib * kB, nq = std::min(kB, Tn - i0);
        T* o = out + static_cast<size_t>(i0) * dl;  // the accumulator is the output itself
        for (int r = 0; r < nq; ++r) {
          m[r] = neg_inf;
          l[r] = 0;
          std::fill(o + static_cast<size_t>(r) * dl, o + static_cast<size_t>(r) * dl + hd, T(0));
        }
        for (int jb = 0; jb <= ib; ++jb) {
          const int j0 = jb * kB, nk = std::min(kB, Tn - j0);
          const bool diag = jb == ib;
          // S = Q_i K_j^T / sqrt(hd)
          gemm(false, true, nq, nk, hd, scale, q + static_cast<size_t>(i0) * ld, ld, k + static_cast<size_t>(j0) * ld,
               ld, T(0), s, kB);
          for (int r = 0; r < nq; ++r) {
            T* row = s + static_cast<size_t>(r) * kB;
            const int nv = diag ? r + 1 : nk;  // columns this query row sees
            const T rm = row_max(row, nv);
            const T mx = rm > m[r] ? rm : m[r];
            const T alpha = vexp(m[r] - mx);  // e^-inf = 0 on the first block
            const T sum = exp_shifted_sum(row, nv, mx);
            for (int c = nv; c < nk; ++c) row[c] = 0;
            l[r] = l[r] * alpha + sum;
            m[r] = mx;
            if (alpha != T(1)) {
              T* orow = o + static_cast<size_t>(r) * dl;
              for (int c = 0; c < hd; ++c) orow[c] *= alpha;
            }
          }
          // acc += P V_j
          gemm(false, false, nq, hd, nk, T(1), s, kB, v + static_cast<size_t>(j0) * ld, ld, T(1), o, dl);
        }
        for (int r = 0; r < nq; ++r) {
          const T inv = T(1) / l[r];
          T* orow = o + static_cast<size_t>(r) * dl;
          for (int c = 0; c < hd; ++c) orow[c] *= inv;
          lse_bh[i0 + r] = m[r] + std::log(l[r]);
        }
      }
    }
  }
}

// One query head's share of the backward: dQ of the head (overwritten), its addition to the
// dK, dV of its KV head. D [Tn], p and dp [kB x kB] are the caller's scratch.
template <typename T>
void head_backward(T* dq, T* dk, T* dv, const T* q, const T* k, const T* v, const T* dout, const T* o, const T* lse,
                   T* D, T* p, T* dp, int Tn, int hd, int ld, int dl, T scale) {
  for (int i = 0; i < Tn; ++i) {  // D = rowsum(dO * O); zero dq
    const T *a = dout + static_cast<size_t>(i) * dl, *c = o + static_cast<size_t>(i) * dl;
    T dot = 0;
    for (int x = 0; x < hd; ++x) dot += a[x] * c[x];
    D[i] = dot;
    std::fill(dq + static_cast<size_t>(i) * ld, dq + static_cast<size_t>(i) * ld + hd, T(0));
  }
  const int nblocks = (Tn + kB - 1) / kB;
  for (int ib = 0; ib < nblocks; ++ib) {
    const int i0 = ib * kB, nq = std::min(kB, Tn - i0);
    const T* qi = q + static_cast<size_t>(i0) * ld;
    const T* doi = dout + static_cast<size_t>(i0) * dl;
    T* dqi = dq + static_cast<size_t>(i0) * ld;
    for (int jb = 0; jb <= ib; ++jb) {
      const int j0 = jb * kB, nk = std::min(kB, Tn - j0);
      const bool diag = jb == ib;
      const T* kj = k + static_cast<size_t>(j0) * ld;
      const T* vj = v + static_cast<size_t>(j0) * ld;
      gemm(false, true, nq, nk, hd, scale, qi, ld, kj, ld, T(0), p, kB);  // S = Q_i K_j^T / sqrt(hd)
      for (int r = 0; r < nq; ++r) {  // P = exp(S - lse), zero above the diagonal
        T* row = p + static_cast<size_t>(r) * kB;
        const int nv = diag ? r + 1 : nk;
        exp_shifted_sum(row, nv, lse[i0 + r]);  // the sum is not needed
        for (int c = nv; c < nk; ++c) row[c] = 0;
      }
      // dV_j += P^T dO_i
      gemm(true, false, nk, hd, nq, T(1), p, kB, doi, dl, T(1), dv + static_cast<size_t>(j0) * ld, ld);
      gemm(false, true, nq, nk, hd, T(1), doi, dl, vj, ld, T(0), dp, kB);  // dP = dO_i V_j^T
      for (int r = 0; r < nq; ++r) {  // dS = P * (dP - D)
        const T* pr = p + static_cast<size_t>(r) * kB;
        T* dr = dp + static_cast<size_t>(r) * kB;
        const T di = D[i0 + r];
#pragma omp simd
        for (int c = 0; c < nk; ++c) dr[c] = pr[c] * (dr[c] - di);
      }
      gemm(false, false, nq, hd, nk, scale, dp, kB, kj, ld, T(1), dqi, ld);  // dQ_i += dS K_j / sqrt(hd)
      // dK_j += dS^T Q_i / sqrt(hd)
      gemm(true, false, nk, hd, nq, scale, dp, kB, qi, ld, T(1), dk + static_cast<size_t>(j0) * ld, ld);
    }
  }
}

// Parallel over (sequence, KV head): the query heads of a group add into the same dK, dV, so
// one task runs them one after another (with Hkv = Hl, one head per task).
template <typename T>
void attention_backward(T* dqkv, const T* datt, const T* qkv, const T* att, const T* lse, int B, int Tn, int Hl,
                        int Hkv, int hd) {
  const int dl = Hl * hd, kvl = Hkv * hd, ld = dl + 2 * kvl, group = Hl / Hkv;
  const T scale = T(1) / std::sqrt(T(hd));
#pragma omp parallel
  {
    // Kept across calls: no allocation per call.
    thread_local std::vector<T> p_buf, dp_buf, d_buf;
    p_buf.resize(static_cast<size_t>(kB) * kB);
    dp_buf.resize(static_cast<size_t>(kB) * kB);
    d_buf.resize(Tn);
#pragma omp for schedule(dynamic)
    for (int bg = 0; bg < B * Hkv; ++bg) {
      const int b = bg / Hkv, g = bg % Hkv;
      const size_t row0 = static_cast<size_t>(b) * Tn * ld;
      const T *k = qkv + row0 + dl + g * hd, *v = k + kvl;
      T *dk = dqkv + row0 + dl + g * hd, *dv = dk + kvl;
      for (int i = 0; i < Tn; ++i) {  // zero this KV head's dk, dv; its query heads add into them
        std::fill(dk + static_cast<size_t>(i) * ld, dk + static_cast<size_t>(i) * ld + hd, T(0));
        std::fill(dv + static_cast<size_t>(i) * ld, dv + static_cast<size_t>(i) * ld + hd, T(0));
      }
      for (int h = g * group; h < (g + 1) * group; ++h) {
        const size_t aoff = static_cast<size_t>(b) * Tn * dl + h * hd;
        head_backward(dqkv + row0 + h * hd, dk, dv, qkv + row0 + h * hd, k, v, datt + aoff, att + aoff,
                      lse + static_cast<size_t>(b * Hl + h) * Tn, d_buf.data(), p_buf.data(), dp_buf.data(), Tn, hd,
                      ld, dl, scale);
      }
    }
  }
}

template void attention_forward<float>(float*, float*, const float*, int, int, int, int, int);
template void attention_forward<double>(double*, double*, const double*, int, int, int, int, int);
template void attention_backward<float>(float*, const float*, const float*, const float*, const float*, int, int, int,
                                        int, int);
template void attention_backward<double>(double*, const double*, const double*, const double*, const double*, int, int,
                                         int, int, int);

}  // namespace lora
