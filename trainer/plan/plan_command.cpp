#include "trainer/plan/plan_command.h"

#include <omp.h>

#include <cstdio>

#include "trainer/config/config_loader.h"
#include "trainer/machine/device_preset.h"
#include "trainer/plan/plan.h"
#include "trainer/plan/plan_report.h"

namespace lora {

int run_plan(const PlanOptions& opt) {
  std::vector<std::string> overrides = opt.set;
  if (!opt.device.empty()) overrides.push_back("device.preset=" + opt.device);  // --device wins
  DeviceConfig device_cfg;
  const RunConfig cfg = load_run_config(opt.yaml, overrides, &device_cfg);
  // The threads each rank will run: train.threads, else what OpenMP gives (OMP_NUM_THREADS).
  const int threads = cfg.train.threads > 0 ? cfg.train.threads : omp_get_max_threads();
  DeviceSpec device = device_preset(device_cfg.preset, threads, cfg.parallel.tp * cfg.parallel.dp,
                                    cfg.model.dtype == "bf16", cfg.train.micro_batch * cfg.train.seq_len);
  if (device_cfg.devices_per_node > 0 && !device.is_cpu) device.devices_per_node = device_cfg.devices_per_node;
  const uint64_t data = token_data_bytes(cfg);
  const Plan plan = make_plan(cfg, device, data);
  if (opt.json) {
    nlohmann::json j = plan_json(plan);
    if (opt.search) j["search"] = search_json(search_layouts(cfg, device, data));
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("%s", plan_table(plan).c_str());
    if (opt.search) std::printf("\n%s", search_table(plan, search_layouts(cfg, device, data)).c_str());
  }
  std::fflush(stdout);
  return 0;
}

}  // namespace lora
