// The GPU presets of `lora_dist plan`: published figures only, no measurement, so the config
// loader can list the preset names without linking the cpu preset's measurements.
#include <cstdint>

#include "trainer/devices/device_spec.h"

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

}  // namespace

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

std::vector<std::string> device_preset_names() {
  std::vector<std::string> names = {"cpu"};
  for (const DeviceSpec& d : gpu_presets()) names.push_back(d.name);
  return names;
}

}  // namespace lora
