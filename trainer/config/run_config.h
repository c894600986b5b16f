// The whole run as read from run.yaml: one plain struct per YAML section.
// Defaults here are the defaults a user gets for a key they leave out.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"  // ModelConfig, LoraConfig: owned by the model layer

namespace lora {

struct OptimConfig {
  float lr = 2e-4f;
  float weight_decay = 0.0f;
  float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;
  float grad_clip = 1.0f;       // global-norm clip; 0 disables
  int warmup_steps = 0;
  std::string decay = "cosine"; // "cosine" | "linear" | "constant"
  float min_lr_ratio = 0.0f;    // floor of the decay, as a fraction of lr
};

struct DataConfig {
  std::string train;            // token shard (io/token_shard.h)
  std::string val;              // optional; empty = no eval
};

struct TrainConfig {
  int steps = 100;
  int batch_size = 8;           // sequences per optimizer step, whole job (all DP ranks)
  int micro_batch = 8;          // sequences per forward/backward on one rank
  int seq_len = 256;
  int eval_every = 0;           // steps; 0 = only at the end (if data.val is set)
  int eval_batches = 4;         // global batches of val data per eval
  int log_every = 10;
  uint64_t seed = 42;           // LoRA init, dropout, data order
  int threads = 0;              // OpenMP threads per rank; 0 = leave OMP_NUM_THREADS/default
  // A step whose loss or gradient norm is NaN or infinite never updates the parameters:
  // "stop" ends the run (exit 4), "skip" drops the step and counts it (Megatron's behaviour).
  std::string on_nonfinite = "stop";
  // Activations kept for the backward (DESIGN §8): "none" keeps every block's; "full" keeps
  // only each block's input and re-runs its forward in the backward (Megatron's full
  // activation checkpointing): same losses and gradients, bit for bit, for one extra
  // forward of the blocks.
  std::string recompute = "none";
};

struct ParallelConfig {
  int tp = 1;
  int dp = 1;
  int check_every = 100;  // steps between cross-rank checksums of the replicated LoRA factors; 0 = off
  double timeout_s = 600;  // watchdog: longest a collective may make no progress (comm/watchdog.h)
};

struct CheckpointConfig {
  int every = 0;                // steps; 0 = off
  double every_minutes = 0;     // wall clock; 0 = off
  int keep_last = 3;
  std::string resume = "none";  // "none" | "auto" | a checkpoint path
};

struct OutputConfig {
  std::string dir = "out";
  std::string metrics = "metrics.jsonl";  // relative to dir
};

struct RunConfig {
  std::string source_path;      // the YAML file this came from, for messages
  ModelConfig model;
  LoraConfig lora;
  OptimConfig optim;
  DataConfig data;
  TrainConfig train;
  ParallelConfig parallel;
  CheckpointConfig checkpoint;
  OutputConfig output;
};

}  // namespace lora
