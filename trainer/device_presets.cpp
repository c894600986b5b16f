#include "trainer/device_presets.h"

#include <algorithm>
#include <cstdio>

#include "model/ops/cpu/frozen_gemm.h"
#include "trainer/config_loader.h"
#include "trainer/fma_peak.h"
#include "trainer/memory_check.h"
#include "trainer/runtime_baseline.h"

namespace lora {

namespace {

constexpr double kTera = 1e12, kGB = 1e9;
constexpr uint64_t kMiB = uint64_t(1) << 20, kGiB = uint64_t(1) << 30;

// Published figures, dense (no 2:4 sparsity), per GPU:
// - A100 SXM4 80GB: FP32 19.5 TFLOP/s, TF32 156, BF16 312; NVLink 3 600 GB/s (both
//   directions together: 12 links x 50 GB/s). NVIDIA A100 datasheet
//   (nvidia-a100-datasheet-us-nvidia-1758950-r4-web.pdf), tabulated at
//   https://glennklockwood.com/garden/processors/A100. DGX A100: 8 x 200 Gb/s HDR InfiniBand
//   for the compute fabric, 25 GB/s per GPU.
// - H100 SXM5 80GB: FP32 66.9 TFLOP/s, TF32 494.7, BF16 989.4 (the datasheet's 1,979 is with
//   sparsity); NVLink 4 900 GB/s (18 links x 50 GB/s, both directions). NVIDIA H100 datasheet,
//   tabulated at https://glennklockwood.com/garden/processors/h100. DGX H100: eight single-port
//   ConnectX-7 at 400 Gb/s NDR for the compute fabric
//   (https://docs.nvidia.com/dgx-basepod/reference-architecture-infrastructure-foundation-enterprise-ai/latest/core-components.html),
//   50 GB/s per GPU.
// - H200 SXM 141GB: the H100's GH100 compute and NVLink 4 with 141 GB of HBM3e (DGX H200:
//   1,128 GB for 8 GPUs, same page).
// Memory is what nvidia-smi reports as the total (A100 81920 MiB, H100 81559 MiB, H200
// 143771 MiB); a process can allocate a little less.
// The link figures here are per direction (half the quoted both-ways totals): a ring
// all-reduce sends and receives at once, so its bus bandwidth is at most that.
//
// model.dtype fp32 plans the fp32 GEMMs at the TF32 tensor-core rate (what cuBLAS uses with
// TF32 math allowed, PyTorch's default for matmuls since 1.7-1.11); bf16 at the BF16 rate.
//
// Runtime and communication memory on a GPU are assumptions, not measurements (no GPU was
// lent to the session that wrote this): the CUDA context, cuBLAS/cuBLASLt workspaces and
// allocator slack take about 1 GiB; NCCL keeps about 512 MiB of buffers per communicator
// with more than one rank (NCCL_BUFFSIZE 4 MiB per channel and peer, several channels).
DeviceSpec gpu(const char* name, const char* description, uint64_t memory_mib, double fp32_tflops,
               double bf16_tflops, double nvlink_gb_s_both_ways, double ib_gb_s_per_gpu) {
  DeviceSpec d;
  d.name = name;
  d.description = description;
  d.memory_bytes = memory_mib * kMiB;
  d.peak_flops_fp32 = fp32_tflops * kTera;
  d.peak_flops_bf16 = bf16_tflops * kTera;
  d.intra_node_bytes_per_s = nvlink_gb_s_both_ways / 2 * kGB;
  d.inter_node_bytes_per_s = ib_gb_s_per_gpu * kGB;
  d.devices_per_node = 8;
  d.runtime_bytes = kGiB;
  d.runtime_note = "assumed: CUDA context, cuBLAS workspaces, allocator slack";
  d.comm_bytes_per_group = 512 * kMiB;
  return d;
}

const std::vector<DeviceSpec>& gpu_presets() {
  static const std::vector<DeviceSpec> presets = {
      gpu("a100-80gb", "NVIDIA A100 SXM4 80GB (TF32 156, BF16 312 TFLOP/s dense; NVLink 600 GB/s; 8 per node, 200 Gb/s IB each)",
          81920, 156, 312, 600, 25),
      gpu("h100-80gb", "NVIDIA H100 SXM5 80GB (TF32 494.7, BF16 989.4 TFLOP/s dense; NVLink 900 GB/s; 8 per node, 400 Gb/s IB each)",
          81559, 494.7, 989.4, 900, 50),
      gpu("h200-141gb", "NVIDIA H200 SXM 141GB (H100 compute, 141 GB HBM3e; NVLink 900 GB/s; 8 per node, 400 Gb/s IB each)",
          143771, 494.7, 989.4, 900, 50),
  };
  return presets;
}

}  // namespace

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

std::vector<std::string> device_preset_names() {
  std::vector<std::string> names = {"cpu"};
  for (const DeviceSpec& d : gpu_presets()) names.push_back(d.name);
  return names;
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
