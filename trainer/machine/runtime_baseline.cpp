#include "trainer/machine/runtime_baseline.h"

#include <omp.h>
#include <sched.h>
#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "model/dtype.h"
#include "model/ops/cpu/frozen_gemm.h"
#include "model/ops/cpu/gemm.h"

extern "C" void openblas_set_num_threads(int);

namespace lora {

uint64_t proc_status_bytes(const char* field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  const size_t n = std::char_traits<char>::length(field);
  while (std::getline(in, line))
    if (line.compare(0, n, field) == 0) {
      std::istringstream fields(line.substr(n));
      uint64_t kib = 0;
      fields >> kib;
      return kib * 1024;
    }
  return 0;
}

uint64_t current_rss_bytes() { return proc_status_bytes("VmRSS:"); }

uint64_t peak_rss_bytes() { return proc_status_bytes("VmHWM:"); }

namespace {

// Warm-up operands straight from mmap: freeing a large malloc'ed block would raise glibc's
// dynamic mmap threshold and change how the run's own allocations are served.
struct MappedFloats {
  float* p = nullptr;
  size_t bytes = 0;
  MappedFloats(size_t n, float value) : bytes(n * sizeof(float)) {
    void* m = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    p = m == MAP_FAILED ? nullptr : static_cast<float*>(m);
    if (p) std::fill(p, p + n, value);
  }
  ~MappedFloats() { if (p) munmap(p, bytes); }
};

}  // namespace

uint64_t measure_runtime_baseline(int threads, bool bf16_model, int rows) {
  omp_set_num_threads(threads);
  openblas_set_num_threads(threads);
  uint64_t operands = 0;
  {
    // K = N = 512 is past OpenBLAS's and oneDNN's blocking sizes, so their per-thread packing
    // buffers fill as in a step; oneDNN's per-call buffers also grow with the GEMM's rows, so
    // the frozen-weight GEMMs run with the step's rows (a micro-batch's tokens, capped at 4096:
    // beyond that the buffers measured no larger). They are freed after each call: the
    // high-water mark keeps them, as a step's does.
    constexpr int n = 512;
    const int m = std::clamp(rows, n, 4096);
    MappedFloats a(size_t(m) * n, 1.0f), b(size_t(n) * n, 0.5f), c(size_t(m) * n, 0.0f);
    if (!a.p || !b.p || !c.p) return current_rss_bytes();
    operands = a.bytes + b.bytes + c.bytes;
    gemm(false, true, n, n, n, 1.0f, a.p, n, b.p, n, 0.0f, c.p, n);  // attention blocks: OpenBLAS
    // LoRA GEMMs, OpenBLAS: u = x A^T, and the weight gradients, whose inner dimension is the rows.
    gemm_split(false, false, m, n, n, 1.0f, a.p, n, b.p, n, 0.0f, c.p, n);
    gemm_split(true, false, n, n, m, 1.0f, a.p, n, c.p, n, 0.0f, b.p, n);
    gemm(true, false, n, n, m, 1.0f, a.p, n, c.p, n, 0.0f, b.p, n);
    const WeightView<float> w(static_cast<const float*>(b.p));
    frozen_gemm_forward(c.p, a.p, w, m, n, n);  // frozen weights: oneDNN fp32 (or OpenBLAS)
    frozen_gemm_backward_input(a.p, c.p, w, m, n, n, false);
    // The bf16 probe creates oneDNN's bf16 primitive where the CPU has one. The GEMM itself is
    // not run: its staging buffers grow with the model's shapes and are planned as such.
    if (bf16_model) onednn_bf16_matmul_available();
  }
  // The high-water mark less the warm-up's own matrices, which a run does not have.
  const uint64_t hwm = peak_rss_bytes();
  return hwm > operands ? hwm - operands : current_rss_bytes();
}

bool cpu_has_bf16_units() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("flags", 0) == 0) {
      std::istringstream words(line);
      std::string w;
      while (words >> w)
        if (w == "avx512_bf16" || w == "amx_bf16") return true;
      return false;
    }
  return false;
}

int usable_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) return 1;
  return std::max(1, CPU_COUNT(&set));
}

double measure_copy_bytes_per_s() {
  constexpr size_t bytes = size_t(64) << 20;
  std::vector<char> src(bytes, 1), dst(bytes, 0);
  double best = 0;
  for (int trial = 0; trial < 3; ++trial) {
    const auto t0 = std::chrono::steady_clock::now();
    std::memcpy(dst.data(), src.data(), bytes);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (s > 0) best = std::max(best, bytes / s);
    src[trial] = dst[bytes - 1 - trial];  // keep the copies observable
  }
  return best;
}

}  // namespace lora
