#include <cmath>
#include <cstddef>
#include <vector>

#include "model/ops/attention.h"
#include "model/ops/cpu/fast_math.h"

namespace lora {

// One (head, query row) pair per task: a decode step has n = 1 and Hl tasks, a prompt's
// prefill n * Hl. Each row is a plain softmax over its pos + 1 scores; the T x T matrix of the
// training kernel never exists here either (one row at a time).
template <typename T>
void attention_forward_cached(T* att, const T* q, int ldq, const T* k_cache, const T* v_cache, int n, int pos0, int Hl,
                              int Hkv, int hd) {
  const int dl = Hl * hd, kvl = Hkv * hd, group = Hl / Hkv;
  const T scale = T(1) / std::sqrt(T(hd));
#pragma omp parallel
  {
    thread_local std::vector<T> p;
    p.resize(static_cast<size_t>(pos0) + n);
#pragma omp for schedule(dynamic)
    for (int task = 0; task < n * Hl; ++task) {
      const int i = task / Hl, h = task % Hl, keys = pos0 + i + 1;  // causal: positions 0 .. pos0+i
      const T* qi = q + static_cast<size_t>(i) * ldq + h * hd;
      T mx = -INFINITY;
      for (int j = 0; j < keys; ++j) {
        const T* kj = k_cache + static_cast<size_t>(j) * kvl + (h / group) * hd;
        T s = 0;
#pragma omp simd reduction(+ : s)
        for (int c = 0; c < hd; ++c) s += qi[c] * kj[c];
        p[j] = s * scale;
        mx = p[j] > mx ? p[j] : mx;
      }
      const T sum = exp_shifted_sum(p.data(), keys, mx);
      T* out = att + static_cast<size_t>(i) * dl + h * hd;
      for (int c = 0; c < hd; ++c) out[c] = 0;
      for (int j = 0; j < keys; ++j) {
        const T w = p[j] / sum;
        const T* vj = v_cache + static_cast<size_t>(j) * kvl + (h / group) * hd;
#pragma omp simd
        for (int c = 0; c < hd; ++c) out[c] += w * vj[c];
      }
    }
  }
}

template void attention_forward_cached<float>(float*, const float*, int, const float*, const float*, int, int, int, int,
                                              int);
template void attention_forward_cached<double>(double*, const double*, int, const double*, const double*, int, int, int,
                                               int, int);

}  // namespace lora
