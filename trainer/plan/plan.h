// `lora_dist plan`'s cost model (DESIGN §8): from a run's config and a device, the bytes one
// rank holds, the FLOPs and collective bytes of one optimizer step and an estimated step
// time, for LoRA as configured and, beside it, for full fine-tuning of the same model.
//
// Memory builds on model/memory_estimate.h (what GptModel allocates) and adds what the
// process holds besides the model: the runtime, token data, library staging buffers.
// Collective bytes follow every call in model/gpt.cpp, model/parallel_linear.h and
// trainer/train/grad_sync.cpp, counted as comm/communicator.h counts them (payload bytes, only in
// groups of more than one rank), so they equal what `bench` measures, byte for byte.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "trainer/devices/device_spec.h"
#include "trainer/config/run_config.h"

namespace lora {

// Bytes one rank holds at its peak. Every term is allocated once and kept (the model's
// buffers at construction, scratch at its largest use), so the peak is their sum.
struct PlanMemory {
  uint64_t weights = 0;       // the rank's shard of the base: matrices in model.dtype, vectors fp32
  uint64_t trainable = 0;     // LoRA A, B; full fine-tuning: the fp32 master copy of bf16 weights
  uint64_t grads = 0;         // fp32
  uint64_t adam = 0;          // AdamW m and v, fp32
  uint64_t block_inputs = 0;  // the residual stream at every block's input, kept in both modes
  // Saved for backward: [0] recompute none, every block's activations; [1] full, one block's,
  // refilled by each block's recompute.
  uint64_t saved_blocks[2] = {0, 0};
  bool recompute = false;     // which of the two this run uses
  uint64_t activation_grads = 0;  // gradients of activations and the backward's other scratch
  uint64_t lm_head_chunk = 0;     // logits of one chunk of rows over the rank's vocabulary
  uint64_t lora_scratch = 0;      // LoRA backward scratch, shared by all adapters
  uint64_t attention_blocks = 0;  // per-thread score blocks of the blocked attention (cpu)
  uint64_t gemm_staging = 0;      // bf16 GEMM staging copies (cpu without native bf16 GEMMs)
  uint64_t nf4_load = 0;          // model.dtype nf4 on a CPU, while loading: every block's fp32 absmax until
                                  // the TP group double-quantizes, and one matrix's rows in fp32 (or the gather)
  uint64_t comm_buffers = 0;      // the collective library's buffers
  uint64_t runtime = 0;           // the process before its model (DeviceSpec::runtime_bytes)
  uint64_t data = 0;              // token shards, shuffle order, one micro-batch of inputs

  uint64_t activations() const { return block_inputs + saved_blocks[recompute ? 1 : 0]; }
  uint64_t peak() const;
};

// Payload bytes one rank puts into collectives during one optimizer step, by group, as
// StepStats counts them (trainer/train/trainer.cpp). Scalar all-reduces (the loss over DP, the
// gradient norm over TP: 8 bytes each) are not in StepStats and not here.
struct PlanCollectives {
  // TP group, summed over the step's micro-batches: what bench prints as tp_activation_bytes.
  uint64_t tp_embedding = 0;       // vocab-parallel embedding: all-reduce of the looked-up rows
  uint64_t tp_row_parallel = 0;    // attention out-projection and fc2 forward (reduce_from_tp_region)
  uint64_t tp_lm_head = 0;         // vocab-parallel cross-entropy: max, then (sum exp, target logit)
  uint64_t tp_input_grads = 0;     // dX of the LM head, fc1 and QKV (copy_to_tp_region_backward)
  uint64_t tp_recompute = 0;       // the out-projection's all-reduce again in each block's recompute
  // After the last micro-batch (trainer/train/grad_sync.cpp): what bench prints as lora_grad_bytes.
  uint64_t grads_world = 0;        // replicated-over-TP factors, summed over the world
  uint64_t grads_dp = 0;           // TP-sharded factors, summed over DP
  uint64_t tp() const { return tp_embedding + tp_row_parallel + tp_lm_head + tp_input_grads + tp_recompute; }
  uint64_t grads() const { return grads_world + grads_dp; }
};

// FLOPs of one optimizer step over the whole job, counted as bench counts them
// (lora_flops_per_token: 2 per multiply-add, the LM head with the unpadded vocabulary,
// attention as 12·L·T·d per token whatever the causal mask skips).
struct PlanFlops {
  double forward = 0;
  double input_grads = 0;   // gradients of activations (frozen weights never get a weight gradient)
  double weight_grads = 0;  // LoRA dA, dB; full fine-tuning: every weight's gradient
  double recompute = 0;     // the blocks' forward again, up to the MLP's GELU (train.recompute full)
  double model() const { return forward + input_grads + weight_grads; }  // what MFU counts
  double executed() const { return model() + recompute; }
};

// A step's time on the device: FLOPs at the dtype's peak plus each collective's ring time
// (2(g-1)/g of its bytes through the slowest link of its group); no overlap assumed.
struct PlanTime {
  double peak_flops = 0;  // per rank, for model.dtype
  double compute_s = 0, tp_comm_s = 0, grad_comm_s = 0;
  double step_s() const { return compute_s + tp_comm_s + grad_comm_s; }
};

struct PlanVerdict {
  bool fits = false;
  uint64_t need = 0, have = 0;  // per device; on the cpu, all ranks of the node together
  std::string largest_term;    // the term with the most bytes
  std::string advice;          // what lowers it
  std::string runner_up, runner_up_advice;  // the next largest: two terms often break it together
  uint64_t largest_bytes = 0, runner_up_bytes = 0;
};

struct Plan {
  RunConfig cfg;
  DeviceSpec device;
  int ranks = 1, micro_batches = 1;  // micro-batches per rank per step
  double tokens_per_step = 0;
  uint64_t trainable_params = 0;     // whole model (LoRA A and B of every layer)
  uint64_t base_params = 0;          // whole model, unpadded
  PlanMemory lora, full;
  PlanCollectives comm;
  uint64_t full_grads_world = 0, full_grads_dp = 0;  // full fine-tuning's gradient all-reduces
  PlanFlops flops_lora, flops_full;
  PlanTime time_lora, time_full;
  PlanVerdict verdict_lora, verdict_full;
};

// The bytes a run's token data takes in memory: data.train and data.val as read
// (4 bytes per token, 1 per mask value) and the training shard's shuffle order, from their
// 64-byte headers; 0 for a file that cannot be read (the run itself would stop there).
uint64_t token_data_bytes(const RunConfig& cfg);

// `data_bytes`: the token data (token_data_bytes, or bench's synthetic tokens).
Plan make_plan(const RunConfig& cfg, const DeviceSpec& device, uint64_t data_bytes);

// One row of `plan --search`: a layout and precision, and whether it fits.
struct LayoutTrial {
  int tp = 1;
  std::string dtype, recompute;
  uint64_t peak = 0, have = 0;
  bool fits = false;
  std::string largest_term;
};
// Every tp that divides the heads and the MLP (1, 2, 4, ... up to n_head), each with model.dtype
// fp32 and bf16 and recompute none and full, dp as configured.
std::vector<LayoutTrial> search_layouts(const RunConfig& cfg, const DeviceSpec& device, uint64_t data_bytes);

}  // namespace lora
