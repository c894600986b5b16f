// `lora_dist plan`: the cost model of trainer/plan/plan.h for a run.yaml, printed as a table or
// JSON, without launching the run's ranks (one process plans for tp x dp of them).
#pragma once
#include <string>
#include <vector>

namespace lora {

struct PlanOptions {
  std::string yaml;
  std::vector<std::string> set;  // "section.key=value" over the file (config_loader.h)
  std::string device;            // a preset name over the file's device.preset; empty = the file's
  bool json = false;             // JSON on stdout instead of the table
  bool search = false;           // also every tp x dtype x recompute, and the smallest that fits
};

// Prints the plan on stdout and returns 0; a bad config or preset throws ConfigError.
int run_plan(const PlanOptions& opt);

}  // namespace lora
