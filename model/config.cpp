#include "model/config.h"

#include <cmath>

namespace lora {

float LoraConfig::scale() const {
  return rslora ? alpha / std::sqrt(static_cast<float>(r)) : alpha / static_cast<float>(r);
}

std::string lora_target_names() {
  std::string s;
  for (int t = 0; t < kNumTargets; ++t) s += (t ? ", " : "") + std::string(lora_target_name(t));
  return s;
}

std::string LoraConfig::target_list() const {
  std::string s;
  for (int t = 0; t < kNumTargets; ++t)
    if (targets[t]) s += (s.empty() ? "" : ",") + std::string(lora_target_name(t));
  return s;
}

}  // namespace lora
