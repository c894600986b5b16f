#include "trainer/machine/device_preset.h"

#include <algorithm>
#include <cstdio>

#include "model/ops/cpu/frozen_gemm.h"
#include "trainer/config/config_loader.h"
#include "trainer/machine/fma_peak.h"
#include "trainer/machine/memory_check.h"
#include "trainer/machine/runtime_baseline.h"

namespace lora {


DeviceSpec cpu_device(int threads, int ranks, bool bf16_model, int rows, bool measure_rates) {
  // First, before anything else here allocates or probes (the bf16 probe below loads oneDNN
  // kernels an fp32 run never creates).
  const uint64_t runtime = measure_runtime_baseline(threads, bf16_model, rows);
  const int cores = usable_cores();
  const double per_core = measure_rates ? measure_fma_peak_gflops_per_core() * 1e9 : 0;
  // Ranks beyond the cores share them: each gets at most its threads, at most its share.
  const double cores_per_rank = std::min<double>(threads, double(cores) / std::max(ranks, 1));
  const bool bf16_units = cpu_has_bf16_units();
  DeviceSpec d;
  d.name = "cpu";
  d.is_cpu = true;
  d.threads_per_rank = threads;
  d.memory_bytes = node_memory_bytes();
  d.peak_flops_fp32 = per_core * cores_per_rank;
  // vdpbf16ps does two bf16 products per fp32 lane; AMX's higher rate is not counted. Without
  // bf16 units bf16 weights are widened and multiplied in fp32: the fp32 rate.
  d.peak_flops_bf16 = bf16_units ? 2 * d.peak_flops_fp32 : d.peak_flops_fp32;
  d.bf16_staging = onednn_bf16_matmul_available() ? DeviceSpec::Bf16Staging::Bf16InputCopy
                                                   : DeviceSpec::Bf16Staging::WidenedBlocks;
  d.intra_node_bytes_per_s = measure_rates ? measure_copy_bytes_per_s() : 0;
  d.inter_node_bytes_per_s = d.intra_node_bytes_per_s;  // one node: nothing crosses
  d.devices_per_node = std::max(ranks, 1);
  d.runtime_bytes = runtime;
  d.runtime_note = "measured: this process after MPI_Init, OpenBLAS/OpenMP and oneDNN warm-up at " +
                   std::to_string(threads) + " thread(s)";
  char text[256];
  std::snprintf(text, sizeof text,
                "this machine: %d cores, fp32 FMA peak %.1f GFLOP/s per core (measured), %s, %d thread(s) per rank",
                cores, per_core / 1e9, bf16_units ? "bf16 units (avx512_bf16/amx)" : "no bf16 units: bf16 = fp32 rate",
                threads);
  d.description = text;
  return d;
}

DeviceSpec device_preset(const std::string& name, int threads, int ranks, bool bf16_model, int rows) {
  if (name == "cpu") return cpu_device(threads, ranks, bf16_model, rows, /*measure_rates=*/true);
  for (const DeviceSpec& d : gpu_presets())
    if (d.name == name) return d;
  std::string valid;
  for (const std::string& n : device_preset_names()) valid += (valid.empty() ? "" : ", ") + n;
  throw ConfigError("device preset '" + name + "' is unknown; valid presets are " + valid);
}

}  // namespace lora
