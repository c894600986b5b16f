// The step loop: micro-batches -> gradient sync -> clip -> AdamW, with eval, metrics,
// checkpoints (io/checkpoint.h) and preemption (trainer/train/preemption.h).
// One Trainer per rank; all ranks call the same methods in the same order.
#pragma once
#include <chrono>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "comm/watchdog.h"
#include "io/batch_sampler.h"
#include "io/checkpoint.h"
#include "model/gpt.h"
#include "trainer/train/adamw.h"
#include "trainer/machine/compute_backend.h"
#include "trainer/train/metrics_log.h"
#include "trainer/config/run_config.h"

namespace lora {

struct StepStats {
  int step = 0;                // optimizer steps completed after this one
  double loss = 0;             // mean CE over the loss tokens of the global batch
  double grad_norm = 0;        // before clipping
  float lr = 0;
  double seconds = 0;
  uint64_t lora_grad_bytes = 0;  // bytes this rank all-reduced for LoRA gradients
  uint64_t tp_bytes = 0;         // bytes this rank all-reduced for TP activations
  long tokens = 0;               // tokens in the global batch
  bool skipped = false;          // non-finite loss or gradient: no update (train.on_nonfinite: skip)
};

// Exit status for a run stopped by train.on_nonfinite: stop (trainer/main.cpp).
constexpr int kExitNonFinite = 4;

// A step's loss or gradient norm was NaN or infinite and train.on_nonfinite is "stop": the
// parameters are those before the step. Thrown on every rank at the same step (both values
// are all-reduced).
struct NonFiniteError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

enum class RunOutcome {
  Finished,   // every step done; final checkpoint and adapter.h5 written
  Preempted,  // a preemption signal arrived: checkpoint written, the job should be requeued
};

class Trainer {
 public:
  // Reads data.train (and data.val) itself. The model computes on `backend` (the CPU when
  // null); `comm` carries the trainer's own collectives, over host memory.
  Trainer(const RunConfig& cfg, Communicator& comm, ComputeBackend* backend = nullptr);
  // With training data given (the benchmark's synthetic tokens).
  Trainer(const RunConfig& cfg, Communicator& comm, TokenShard train, ComputeBackend* backend = nullptr);

  StepStats train_step();  // runs optimizer step number step() and advances
  double evaluate();       // mean CE over train.eval_batches global batches of data.val
  // The whole run: resume (checkpoint.resume), steps, progress, eval, metrics, checkpoints
  // (every N steps, every N minutes, at the end, on preemption), then adapter.h5.
  RunOutcome run();
  // Collective: writes the checkpoint of the current step and applies keep_last; returns its path.
  std::string write_checkpoint();

  // Step times and long phases (checkpoint writes) go to this watchdog; null = none.
  void set_watchdog(Watchdog* w) { watchdog_ = w; }

  int step() const { return step_; }
  GptModel<float>& model() { return *model_; }
  ComputeBackend& backend() { return *backend_; }
  AdamW& optimizer() { return adamw_; }
  const RunConfig& config() const { return cfg_; }
  const std::string& last_checkpoint() const { return last_checkpoint_; }
  int preempted_by() const { return preempted_by_; }  // the signal that preempted run(), or 0

 private:
  // What every rank must decide alike at the end of a step.
  struct StepEnd {
    int signal = 0;         // a preemption signal reached some rank
    bool save_due = false;  // checkpoint.every_minutes have passed since the last save
  };

  void setup(bool read_train);  // read_train: data.train too (not given to the constructor)
  // What to do with a step whose loss or gradient norm is not finite; throws NonFiniteError
  // for train.on_nonfinite: stop.
  void handle_nonfinite(const StepStats& s);
  bool resume();  // restores what checkpoint.resume names; false for a fresh start
  StepEnd agree_at_step_end();
  void export_full_model();     // full fine-tuning: <output.dir>/model.h5 instead of adapter.h5
  void check_replicas_agree();  // throws when the replicated LoRA factors differ across ranks
  void export_adapter();
  void log_run_end();  // each rank's peak RSS, gathered: the figure `plan` predicts
  LoraSlices slices();
  const BaseFingerprint& fingerprint();  // computed once, on world rank 0 only
  // Fills the micro-batch buffers with samples [first, first + n) of `sampler`.
  MicroBatch load(const BatchSampler& sampler, uint64_t first, int n);
  double dp_sum(double v);
  void log_step(const StepStats& s, double elapsed);
  bool is_logger() const { return comm_.rank(Group::World) == 0; }

  RunConfig cfg_;
  Communicator& comm_;
  ComputeBackend cpu_backend_;  // when none is given
  ComputeBackend* backend_;
  TokenShard train_data_;
  std::optional<TokenShard> val_data_;
  std::unique_ptr<BatchSampler> train_sampler_, val_sampler_;
  std::unique_ptr<GptModel<float>> model_;
  AdamW adamw_;
  MetricsLog metrics_;
  int step_ = 0;
  BaseFingerprint fingerprint_;
  bool have_fingerprint_ = false;
  int last_saved_step_ = -1;
  std::chrono::steady_clock::time_point last_save_time_;
  std::string last_checkpoint_;
  int preempted_by_ = 0;
  long skipped_steps_ = 0;
  Watchdog* watchdog_ = nullptr;  // steps dropped for a non-finite loss or gradient (this process's run)
  std::vector<int32_t> inputs_, targets_;
  std::vector<float> mask_;
};

// Sequences each DP rank takes per step: batch_size = dp * (micro-batches per step) * micro_batch.
inline int sequences_per_rank(const RunConfig& c) { return c.train.batch_size / c.parallel.dp; }

}  // namespace lora
