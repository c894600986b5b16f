#include "trainer/run_config.h"

#include <cmath>

namespace lora {

float LoraConfig::scale() const {
  return rslora ? alpha / std::sqrt(static_cast<float>(r)) : alpha / static_cast<float>(r);
}

}  // namespace lora
