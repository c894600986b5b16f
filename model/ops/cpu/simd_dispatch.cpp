#include <cstdlib>
#include <stdexcept>
#include <string>

#include "model/ops/cpu/fast_math.h"

namespace lora {

int simd_lanes() {
  static const int lanes = [] {
    int best = 4;
#if defined(__x86_64__) || defined(__i386__)
    // __builtin_cpu_supports also checks that the OS saves the wide registers (XCR0).
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) best = 8;
    if (__builtin_cpu_supports("avx512f")) best = 16;
#endif
    if (const char* cap = std::getenv("LORA_SIMD_LANES")) {
      const int c = std::atoi(cap);
      if (c == 4 || c == 8 || c == 16) best = c < best ? c : best;
    }
    return best;
  }();
  return lanes;
}

void check_simd_lanes(const char* op, int lanes) {
  if ((lanes != 4 && lanes != 8 && lanes != 16) || lanes > simd_lanes())
    throw std::invalid_argument(std::string(op) + ": " + std::to_string(lanes) + " float lanes: this CPU runs 4" +
                                (simd_lanes() >= 8 ? ", 8" : "") + (simd_lanes() >= 16 ? ", 16" : "") +
                                " (LORA_SIMD_LANES caps them)");
}

}  // namespace lora
