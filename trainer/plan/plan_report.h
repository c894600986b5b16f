// A plan as people read it (an aligned table, LoRA beside full fine-tuning) and as programs
// read it (JSON, every figure in bytes, FLOPs and seconds).
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "trainer/plan/plan.h"

namespace lora {

std::string plan_table(const Plan& p);
nlohmann::json plan_json(const Plan& p);

// `plan --search`: one line per layout and precision, then the smallest tp that fits with the
// config's own dtype and recompute, and what fails at that tp without each of them.
std::string search_table(const Plan& p, const std::vector<LayoutTrial>& rows);
nlohmann::json search_json(const std::vector<LayoutTrial>& rows);

}  // namespace lora
