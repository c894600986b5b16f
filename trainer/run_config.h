// The whole run as read from run.yaml: one plain struct per YAML section.
// Defaults here are the defaults a user gets for a key they leave out.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace lora {

struct ModelConfig {
  int n_layer = 12;
  int n_head = 12;
  int d_model = 768;
  int vocab_size = 50257;
  int context = 1024;          // learned position table size; train.seq_len must fit
  float ln_eps = 1e-5f;
  std::string init = "seed";   // "seed": GPT-2 init from init_seed; "file": read weights_file;
                               // "hf": read the HF GPT-2 folder `path` (shape from its config.json)
  uint64_t init_seed = 1234;
  float init_std = 0.02f;      // GPT-2 / Megatron init_method_std; residual projections get
                               // init_std/sqrt(2*n_layer), positions init_std/2
  std::string weights_file;    // HDF5 base weights (io/base_weights.h), when init == "file"
  std::string path;            // HF model folder (io/hf_base_weights.h), when init == "hf"
  std::string dtype = "fp32";  // frozen matrices: "fp32" or "bf16" (model/dtype.h)
};

// Which linear layers carry a LoRA pair (DESIGN §4). q, k, v are separate
// pairs inside the fused QKV projection.
enum LoraTarget : int { kQ = 0, kK, kV, kO, kFc1, kFc2, kNumTargets };
inline const char* lora_target_name(int t) {
  static const char* names[kNumTargets] = {"q", "k", "v", "o", "fc1", "fc2"};
  return names[t];
}

struct LoraConfig {
  int r = 8;
  float alpha = 16.0f;
  bool rslora = false;          // scale alpha/sqrt(r) instead of alpha/r
  float dropout = 0.0f;         // on the input of A only
  bool targets[kNumTargets] = {true, false, true, false, false, false};  // the paper's q,v
  std::string init_from;        // a PEFT adapter folder (io/peft_adapter.h) the pairs start from
                                // instead of kaiming A / zero B; empty: none. A resumed
                                // checkpoint still wins: this is step 0's state only.
  float scale() const;          // alpha/r or alpha/sqrt(r)
  std::string target_list() const;  // "q,v": the enabled targets in layout order
};

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
