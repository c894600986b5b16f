// Wall time per operation, summed over layers and steps, for `lora_dist bench`: the
// answer to "where does a step's time go" without a profiler. Off unless enabled; a
// disabled Stopwatch costs one branch.
#pragma once
#include <omp.h>

#include <map>
#include <string>

#include "model/ops/gemm_clock.h"

namespace lora {

class OpTimers {
 public:
  bool enabled = false;
  std::map<std::string, double> seconds;  // by op name, e.g. "fwd attention"
  std::map<std::string, double> gemm_seconds;  // of which inside GEMM calls (model/ops/gemm_clock.h)
  std::string prefix;  // prepended to the names, e.g. "recompute: " inside a recompute
  // A GPU backend's wait for its stream, or null: with it each op is timed to its end, not
  // to its launch (the timed steps run slower, which is why timers are off outside bench).
  void (*synchronize)() = nullptr;
  void reset() {
    seconds.clear();
    gemm_seconds.clear();
  }
};

class Stopwatch {
 public:
  Stopwatch(OpTimers& t, const char* name)
      : t_(t), name_(name), start_(t.enabled ? now() : 0), gemm_start_(t.enabled ? gemm_clock_seconds() : 0) {}
  ~Stopwatch() {
    if (!t_.enabled) return;
    const std::string key = t_.prefix + name_;
    t_.seconds[key] += now() - start_;
    t_.gemm_seconds[key] += gemm_clock_seconds() - gemm_start_;
  }
  Stopwatch(const Stopwatch&) = delete;
  Stopwatch& operator=(const Stopwatch&) = delete;

 private:
  // A failed kernel makes synchronize throw: not from a destructor. The error is sticky, so
  // the next op or copy reports it, with its own call site.
  double now() const noexcept {
    try {
      if (t_.synchronize) t_.synchronize();
    } catch (...) {
    }
    return omp_get_wtime();
  }
  OpTimers& t_;
  const char* name_;
  double start_, gemm_start_;
};

}  // namespace lora
