// Time spent inside the GEMM libraries (OpenBLAS, oneDNN) on the CPU, for `lora_dist bench`'s
// per-op table: which part of an op, and of a step, is GEMM work and which is the rest (the
// element-wise passes, the softmax, widening, copies). Off unless a bench turns it on; off,
// a GEMM pays one relaxed load.
//
// A GEMM called by one thread (the frozen-weight GEMMs, which thread inside the library)
// counts its wall time. One called by each thread of a parallel region on its own part
// (attention per head, the split LoRA GEMMs of model/ops/cpu/gemm.h) counts its time divided by
// the team's size, so a region whose threads all run GEMMs for its whole length counts its
// wall time once.
#pragma once
#include <omp.h>

#include <atomic>
#include <cstdint>

namespace lora {

inline std::atomic<bool> g_gemm_clock_on{false};
inline std::atomic<int64_t> g_gemm_clock_ns{0};

inline void set_gemm_clock(bool on) { g_gemm_clock_on.store(on, std::memory_order_relaxed); }
// Seconds counted since the process started (differences are what mean something).
inline double gemm_clock_seconds() { return 1e-9 * static_cast<double>(g_gemm_clock_ns.load(std::memory_order_relaxed)); }

// Counts the GEMM call of its scope.
class GemmTimed {
 public:
  GemmTimed() : start_(g_gemm_clock_on.load(std::memory_order_relaxed) ? omp_get_wtime() : -1) {}
  ~GemmTimed() {
    if (start_ < 0) return;
    double s = omp_get_wtime() - start_;
    if (omp_in_parallel()) s /= omp_get_num_threads();
    g_gemm_clock_ns.fetch_add(static_cast<int64_t>(s * 1e9), std::memory_order_relaxed);
  }
  GemmTimed(const GemmTimed&) = delete;
  GemmTimed& operator=(const GemmTimed&) = delete;

 private:
  double start_;
};

}  // namespace lora
