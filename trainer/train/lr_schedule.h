// Learning rate at an optimizer step: linear warm-up from 0, then cosine, linear or no
// decay down to min_lr_ratio * lr at the last step.
#pragma once
#include "trainer/config/run_config.h"

namespace lora {

// step is 0-based; total_steps is train.steps.
float learning_rate(const OptimConfig& o, int step, int total_steps);

}  // namespace lora
