#include "model/ops/attention.h"

#include <cmath>
#include <cstddef>
#include <vector>

#include "model/ops/cpu/fast_math.h"
#include "model/ops/cpu/gemm.h"

namespace lora {

// Each (sequence, head) pair is independent: OpenMP over pairs, one-thread GEMMs inside,
// which beats threading each small GEMM (../shared/anchors README, per-head rows).

template <typename T>
void attention_forward(T* att, T* P, const T* qkv, int B, int Tn, int Hl, int hd) {
  const int dl = Hl * hd, ld = 3 * dl;
  const T scale = T(1) / std::sqrt(T(hd));
#pragma omp parallel for schedule(dynamic)
  for (int bh = 0; bh < B * Hl; ++bh) {
    const int b = bh / Hl, h = bh % Hl;
    const T* q = qkv + static_cast<size_t>(b) * Tn * ld + h * hd;
    const T* k = q + dl;
    const T* v = q + 2 * dl;
    T* p = P + static_cast<size_t>(bh) * Tn * Tn;
    gemm(false, true, Tn, Tn, hd, scale, q, ld, k, ld, T(0), p, Tn);  // S = Q K^T / sqrt(hd)
    for (int i = 0; i < Tn; ++i) {  // causal softmax of row i over j <= i
      T* row = p + static_cast<size_t>(i) * Tn;
      T mx = row[0];
      for (int j = 1; j <= i; ++j) mx = row[j] > mx ? row[j] : mx;
      T sum = 0;
#pragma omp simd reduction(+ : sum)
      for (int j = 0; j <= i; ++j) sum += (row[j] = vexp(row[j] - mx));
      const T inv = T(1) / sum;
      for (int j = 0; j <= i; ++j) row[j] *= inv;
      for (int j = i + 1; j < Tn; ++j) row[j] = 0;
    }
    gemm(false, false, Tn, hd, Tn, T(1), p, Tn, v, ld, T(0), att + static_cast<size_t>(b) * Tn * dl + h * hd, dl);
  }
}

template <typename T>
void attention_backward(T* dqkv, const T* datt, const T* qkv, const T* P, int B, int Tn, int Hl, int hd) {
  const int dl = Hl * hd, ld = 3 * dl;
  const T scale = T(1) / std::sqrt(T(hd));
#pragma omp parallel
  {
    // Kept across calls: a fresh 256 KiB buffer per call is an mmap and 64 page faults.
    thread_local std::vector<T> dp;
    dp.resize(static_cast<size_t>(Tn) * Tn);
#pragma omp for schedule(dynamic)
    for (int bh = 0; bh < B * Hl; ++bh) {
      const int b = bh / Hl, h = bh % Hl;
      const size_t off = static_cast<size_t>(b) * Tn * ld + h * hd;
      const T *q = qkv + off, *k = q + dl, *v = q + 2 * dl;
      T *dq = dqkv + off, *dk = dq + dl, *dv = dq + 2 * dl;
      const T* p = P + static_cast<size_t>(bh) * Tn * Tn;
      const T* dout = datt + static_cast<size_t>(b) * Tn * dl + h * hd;
      gemm(true, false, Tn, hd, Tn, T(1), p, Tn, dout, dl, T(0), dv, ld);          // dV = P^T dO
      gemm(false, true, Tn, Tn, hd, T(1), dout, dl, v, ld, T(0), dp.data(), Tn);  // dP = dO V^T
      for (int i = 0; i < Tn; ++i) {  // dS = P * (dP - rowsum(P * dP)), zero above the diagonal
        const T* pr = p + static_cast<size_t>(i) * Tn;
        T* dr = dp.data() + static_cast<size_t>(i) * Tn;
        T dot = 0;
        for (int j = 0; j <= i; ++j) dot += pr[j] * dr[j];
        for (int j = 0; j <= i; ++j) dr[j] = pr[j] * (dr[j] - dot);
        for (int j = i + 1; j < Tn; ++j) dr[j] = 0;
      }
      gemm(false, false, Tn, hd, Tn, scale, dp.data(), Tn, k, ld, T(0), dq, ld);  // dQ = dS K / sqrt(hd)
      gemm(true, false, Tn, hd, Tn, scale, dp.data(), Tn, q, ld, T(0), dk, ld);   // dK = dS^T Q / sqrt(hd)
    }
  }
}

template void attention_forward<float>(float*, float*, const float*, int, int, int, int);
template void attention_forward<double>(double*, double*, const double*, int, int, int, int);
template void attention_backward<float>(float*, const float*, const float*, const float*, int, int, int, int);
template void attention_backward<double>(double*, const double*, const double*, const double*, int, int, int, int);

}  // namespace lora
