#include "trainer/train/adamw.h"

#include "model/ops/adamw.h"

namespace lora {

void AdamW::update(float* params, const float* grads, float lr, const OptimConfig& o) {
  ++step;
  adamw_update(params, grads, m.data(), v.data(), m.size(), lr, o.beta1, o.beta2, o.eps, o.weight_decay, step);
}

}  // namespace lora
