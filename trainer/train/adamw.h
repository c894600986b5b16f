// AdamW over the flat LoRA buffer: its moments m and v have the same layout, so a rank
// updates exactly the parameters it holds and replicated ones stay identical everywhere.
#pragma once
#include <vector>

#include "trainer/config/run_config.h"

namespace lora {

struct AdamW {
  std::vector<float> m, v;
  long step = 0;  // optimizer steps taken, for bias correction

  explicit AdamW(size_t n = 0) : m(n, 0.0f), v(n, 0.0f) {}
  void update(float* params, const float* grads, float lr, const OptimConfig& o);
};

}  // namespace lora
