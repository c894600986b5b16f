// The devices `lora_dist plan` can plan for: what one rank's device offers (memory, peak
// FLOP/s per dtype, link bandwidths). The GPU figures are published ones (sources in
// gpu_presets.cpp), plain data; `cpu` is this machine, measured when asked for
// (trainer/machine/device_preset.h).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace lora {

struct DeviceSpec {
  std::string name;         // "h100-80gb"
  std::string description;  // one line for the report
  bool is_cpu = false;      // ranks are processes sharing one node's memory (this machine)
  uint64_t memory_bytes = 0;  // per device (GPU) or per node (cpu: shared by its ranks)
  double peak_flops_fp32 = 0;  // dense FLOP/s one rank can reach for model.dtype fp32
  double peak_flops_bf16 = 0;  // ... for model.dtype bf16 (bf16 inputs, fp32 accumulation)
  double intra_node_bytes_per_s = 0;  // per rank and direction, inside a node (NVLink, shared memory)
  double inter_node_bytes_per_s = 0;  // per rank and direction, between nodes (InfiniBand)
  int devices_per_node = 8;           // ranks a node holds; a group larger than this crosses nodes
  // Memory a rank's process holds before the model: for cpu the measured process (binary,
  // MPI, OpenBLAS and oneDNN warm), for a GPU the CUDA context and library workspaces.
  uint64_t runtime_bytes = 0;
  std::string runtime_note;  // where runtime_bytes comes from
  // Bytes per peer rank on the node that the collective library keeps (MPI shared-memory
  // queues on the cpu; NCCL's buffers per communicator on GPUs: see comm_bytes_per_group).
  uint64_t comm_bytes_per_peer = 0;
  uint64_t comm_bytes_per_group = 0;
  // How a bf16 frozen-weight GEMM stages its operands (model/ops/cpu/frozen_gemm.cpp): GPUs
  // multiply bf16 natively; a CPU with oneDNN's bf16 matmul rounds the input to a bf16 copy;
  // one without (oneDNN's bf16 kernels start at avx512_core) keeps an fp32 copy of the rounded
  // input and widens the weight one ~16 MiB block of rows at a time.
  enum class Bf16Staging { None, Bf16InputCopy, WidenedBlocks };
  Bf16Staging bf16_staging = Bf16Staging::None;
  int threads_per_rank = 1;  // cpu: OpenMP threads each rank runs (the peak counts them)
};

// Names of the presets, in the order `--help` lists them (trainer/devices/gpu_presets.cpp).
std::vector<std::string> device_preset_names();

// The GPU presets, published figures (sources in trainer/devices/gpu_presets.cpp).
const std::vector<DeviceSpec>& gpu_presets();

}  // namespace lora
