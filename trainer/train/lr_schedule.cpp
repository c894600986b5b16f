#include "trainer/train/lr_schedule.h"

#include <algorithm>
#include <cmath>

namespace lora {

float learning_rate(const OptimConfig& o, int step, int total_steps) {
  if (step < o.warmup_steps) return o.lr * static_cast<float>(step + 1) / static_cast<float>(o.warmup_steps);
  const float floor = o.lr * o.min_lr_ratio;
  const int decay_steps = std::max(1, total_steps - o.warmup_steps - 1);
  const double progress = std::min(1.0, static_cast<double>(step - o.warmup_steps) / decay_steps);
  if (o.decay == "cosine") return static_cast<float>(floor + (o.lr - floor) * 0.5 * (1.0 + std::cos(M_PI * progress)));
  if (o.decay == "linear") return static_cast<float>(o.lr - (o.lr - floor) * progress);
  return o.lr;  // constant
}

}  // namespace lora
