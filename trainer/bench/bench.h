// `lora_dist bench`: timed optimizer steps of a run's shape on synthetic tokens (or on a token
// shard's windows, its loss mask included: --data). Prints tokens/s, model FLOP/s and MFU
// (FLOPs counted as ../shared/anchors counts them, every position through the LM head), peak
// memory per rank, the bytes all-reduced per step, and where a step's time goes: per op, and
// of it inside GEMM calls (CPU).
#pragma once
#include "trainer/machine/compute_backend.h"
#include "comm/communicator.h"
#include "comm/watchdog.h"
#include "trainer/config/run_config.h"

namespace lora {

struct BenchOptions {
  std::string yaml;
  int steps = 5;                     // timed steps
  int warmup = 2;                    // untimed steps first
  double peak_gflops_per_core = 0;   // fp32 peak MFU is measured against; 0 = measure it here
  std::string json;                  // also append the result as one JSON line here
  std::string data;                  // a token shard to step on (with its loss mask); empty: random tokens, all scored
};

// FLOPs of one token of a LoRA step (anchors' torch_lora_bench.py): 4*N_mm + 6*N_lora + 12*L*T*d,
// N_mm = 12*L*d^2 + V*d (tied LM head), N_lora = L * sum over targets of r*(in + out). With a
// loss mask scoring `scored_share` of the positions, the LM head (4 V d a position; full
// fine-tuning's weight gradient 2 V d more) counts on that share only: the others skip it.
double lora_flops_per_token(const ModelConfig& m, const LoraConfig& l, int seq_len, double scored_share = 1.0);

// `watchdog` (may be null) is told each step's time, so its limit fits the bench's shape.
// On a GPU backend MFU is against the device's dense bf16 peak (its trainer/devices/gpu_presets.cpp
// entry, found from the device's name; --peak-gflops-per-core gives it per GPU instead).
int run_bench(const RunConfig& cfg, Communicator& comm, const BenchOptions& opt, Watchdog* watchdog = nullptr,
              ComputeBackend* backend = nullptr);

}  // namespace lora
