#include "trainer/train/trainer.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <thread>
#include <vector>

#include "comm/collective_guard.h"
#include "io/base_weights.h"
#include "io/input_error.h"
#include "trainer/train/checkpoint_run.h"
#include "trainer/config/config_loader.h"
#include "trainer/train/grad_sync.h"
#include "trainer/train/load_base.h"
#include "trainer/train/lora_init_from.h"
#include "trainer/train/lr_schedule.h"
#include "trainer/train/preemption.h"
#include "trainer/machine/runtime_baseline.h"

namespace lora {

namespace {
using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// LORA_DIST_FAIL_AT=<rank>:<step> makes that rank throw in the middle of that step, after
// its first micro-batch, while the other ranks wait in collectives: how the test suite
// (tests/failure) shows that one failing rank ends the whole job instead of hanging it.
// LORA_DIST_STALL_AT=<rank>:<step> makes it stop there for good instead, as a rank behind a
// lost link does: the others' watchdog (comm/watchdog.h) must end the job.
void fail_if_asked(int rank, int step) {
  static const char* fail = std::getenv("LORA_DIST_FAIL_AT");
  static const char* stall = std::getenv("LORA_DIST_STALL_AT");
  int r = -1, s = -1;
  if (fail && std::sscanf(fail, "%d:%d", &r, &s) == 2 && r == rank && s == step)
    throw std::runtime_error("failure injected by LORA_DIST_FAIL_AT=" + std::string(fail));
  if (stall && std::sscanf(stall, "%d:%d", &r, &s) == 2 && r == rank && s == step)
    for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
}

}  // namespace

Trainer::Trainer(const RunConfig& cfg, Communicator& comm, ComputeBackend* backend)
    : cfg_(cfg), comm_(comm), backend_(backend ? backend : &cpu_backend_) {
  setup(/*read_train=*/true);
}

Trainer::Trainer(const RunConfig& cfg, Communicator& comm, TokenShard train, ComputeBackend* backend)
    : cfg_(cfg), comm_(comm), backend_(backend ? backend : &cpu_backend_), train_data_(std::move(train)) {
  setup(/*read_train=*/false);
}

void Trainer::setup(bool read_train) {
  const ModelConfig& m = cfg_.model;
  const TrainConfig& t = cfg_.train;
  // Every rank reads the same shards, yet a rank that fails must not leave the others
  // waiting in the next collective: each guard ends in one all-reduce of a failure flag.
  agree_on_failure<InputError>(comm_, Group::World, kExitBadInput, "read its token shards", [&] {
    if (read_train) train_data_ = read_token_shard(cfg_.data.train);
    if (!cfg_.data.val.empty()) val_data_ = read_token_shard(cfg_.data.val);
    for (const TokenShard* s : {&train_data_, val_data_ ? &*val_data_ : nullptr})
      if (s && static_cast<int64_t>(s->vocab_size) > m.vocab_size)
        throw InputError(s->path + ": token vocabulary " + std::to_string(s->vocab_size) +
                         " is larger than model.vocab_size " + std::to_string(m.vocab_size) + " of " +
                         cfg_.source_path);
    train_sampler_ = std::make_unique<BatchSampler>(train_data_, t.seq_len, t.seed, /*shuffle=*/true);
    if (val_data_) val_sampler_ = std::make_unique<BatchSampler>(*val_data_, t.seq_len, t.seed, /*shuffle=*/false);
  });

  model_ = std::make_unique<GptModel<float>>(m, cfg_.lora, backend_->model_comm(comm_), t.micro_batch, t.seq_len,
                                             t.recompute == "full", backend_->ops());
  load_frozen_base(cfg_, *model_, comm_, is_logger() ? stdout : nullptr);
  model_->init_lora(t.seed);
  if (!cfg_.lora.init_from.empty()) {  // step 0's pairs from a PEFT adapter; a resume overrides them
    agree_on_failure<InputError>(comm_, Group::World, kExitBadInput, "read lora.init_from", [&] {
      load_lora_init_from(cfg_, model_->lora_layout(), model_->dims().tp_rank, model_->lora_params().data());
    });
    if (is_logger()) std::printf("lora: pairs initialised from the PEFT adapter %s\n", cfg_.lora.init_from.c_str());
  }
  model_->upload_frozen();  // to the GPU, on the CUDA backend; the host copies stay the masters
  model_->upload_trainable();
  if (is_logger())  // the run's first line: what the frozen weights are and which kernel multiplies them
    std::printf("model: %s %s weights, %zu bytes on TP rank 0; frozen-weight GEMMs: %s\n", m.dtype.c_str(),
                model_->full_finetuning() ? "trained (full fine-tuning, lora.enabled: false)" : "frozen",
                model_->frozen_bytes(),
                backend_->frozen_gemm_kernel(model_->dtype()).c_str());
  adamw_ = AdamW(model_->trainable_params().size());

  const size_t n = static_cast<size_t>(t.micro_batch) * t.seq_len;
  inputs_.resize(n);
  targets_.resize(n);
  mask_.resize(n);
  agree_on_failure<ConfigError>(comm_, Group::World, kExitConfig, "open the metrics file", [&] {
    if (is_logger() && !cfg_.output.metrics.empty())
      metrics_.open((std::filesystem::path(cfg_.output.dir) / cfg_.output.metrics).string());
  });
}

MicroBatch Trainer::load(const BatchSampler& sampler, uint64_t first, int n) {
  sampler.fill(first, n, inputs_.data(), targets_.data(), mask_.data());
  return MicroBatch{inputs_.data(), targets_.data(), mask_.data(), n, cfg_.train.seq_len};
}

double Trainer::dp_sum(double v) {
  comm_.all_reduce_sum(&v, 1, Group::DP);
  return v;
}

StepStats Trainer::train_step() {
  const auto t0 = Clock::now();
  const TrainConfig& t = cfg_.train;
  const int per_rank = sequences_per_rank(cfg_), mb = t.micro_batch;
  // DESIGN §5: the global batch of step s is samples [s*batch, (s+1)*batch); DP rank i
  // takes its contiguous share. Every rank counts the loss tokens of the whole batch.
  const uint64_t step_first = static_cast<uint64_t>(step_) * t.batch_size;
  const uint64_t rank_first = step_first + static_cast<uint64_t>(comm_.rank(Group::DP)) * per_rank;
  const double loss_tokens = std::max(1.0, train_sampler_->count_loss_tokens(step_first, t.batch_size));

  StepStats s;
  s.lr = learning_rate(cfg_.optim, step_, t.steps);
  Communicator& model_comm = model_->comm();  // the run's, or NCCL / host-staged on the GPU
  const uint64_t tp_before = model_comm.bytes(Group::TP);
  model_->zero_grads();
  double loss = 0;
  for (int i = 0; i < per_rank; i += mb) {
    const uint64_t first = rank_first + i;
    DropoutContext ctx{true, t.seed, static_cast<uint32_t>(step_),
                       static_cast<uint32_t>((first - step_first) * t.seq_len)};
    loss += model_->step(load(*train_sampler_, first, mb), loss_tokens, ctx, /*grad=*/true);
    fail_if_asked(comm_.rank(Group::World), step_);
  }
  s.tp_bytes = model_comm.bytes(Group::TP) - tp_before;

  // The all-reduce runs where the gradients are (over NCCL on the GPU); clipping and AdamW on
  // the host masters, which then go back to the backend.
  auto& grads = model_->trainable_grads();
  float* backend_grads = model_->backend_trainable_grads();
  s.lora_grad_bytes = model_->full_finetuning()
                          ? all_reduce_full_grads(model_comm, backend_grads, grads.size())
                          : all_reduce_lora_grads(model_comm, backend_grads, model_->lora_layout().replicated_size,
                                                  grads.size());
  model_->download_gradients();
  s.grad_norm = grad_norm(comm_, model_->trainable_layout(), grads.data());
  s.loss = dp_sum(loss);
  // Both are all-reduced, so every rank takes the same branch.
  if (std::isfinite(s.loss) && std::isfinite(s.grad_norm)) {
    clip_grads(grads.data(), grads.size(), s.grad_norm, cfg_.optim.grad_clip);
    adamw_.update(model_->trainable_params().data(), grads.data(), s.lr, cfg_.optim);
    model_->upload_trainable();
  } else {
    s.skipped = true;
    handle_nonfinite(s);  // throws for on_nonfinite: stop, before the step counts
  }
  ++step_;
  s.step = step_;
  s.tokens = static_cast<long>(t.batch_size) * t.seq_len;
  s.seconds = seconds_since(t0);
  return s;
}

void Trainer::handle_nonfinite(const StepStats& s) {
  // Name the first gradient tensor of this rank that is not finite: where to look first.
  std::string where = "no gradient of rank " + std::to_string(comm_.rank(Group::World)) + " is non-finite";
  const auto& grads = model_->trainable_grads();
  for (const TensorSpec& spec : model_->trainable_layout().tensors) {
    const size_t i = first_nonfinite(grads.data() + spec.offset, spec.local_size());
    if (i == spec.local_size()) continue;
    where = "first non-finite gradient: " + spec.name + " element " + std::to_string(i) + " (rank " +
            std::to_string(comm_.rank(Group::World)) + ")";
    break;
  }
  char what[160];
  std::snprintf(what, sizeof what, "step %d: loss %g, gradient norm %g; ", step_ + 1, s.loss, s.grad_norm);
  if (cfg_.train.on_nonfinite == "stop")
    throw NonFiniteError(std::string(what) + where + "; the parameters were not updated" +
                         (last_checkpoint_.empty() ? "" : ", last checkpoint " + last_checkpoint_) +
                         " (train.on_nonfinite: stop; 'skip' drops such steps instead)");
  ++skipped_steps_;
  if (is_logger())
    std::fprintf(stderr, "lora_dist: warning: %s%s; step skipped, no update (%ld skipped so far)\n", what,
                 where.c_str(), skipped_steps_);
}

double Trainer::evaluate() {
  if (!val_sampler_) throw std::runtime_error("evaluate() needs data.val");
  const TrainConfig& t = cfg_.train;
  const int per_rank = sequences_per_rank(cfg_);
  const uint64_t total = static_cast<uint64_t>(t.eval_batches) * t.batch_size;
  const double loss_tokens = std::max(1.0, val_sampler_->count_loss_tokens(0, static_cast<int>(total)));
  double loss = 0;
  for (int b = 0; b < t.eval_batches; ++b) {
    const uint64_t rank_first = static_cast<uint64_t>(b) * t.batch_size + comm_.rank(Group::DP) * per_rank;
    for (int i = 0; i < per_rank; i += t.micro_batch)
      loss += model_->step(load(*val_sampler_, rank_first + i, t.micro_batch), loss_tokens, DropoutContext{}, false);
  }
  return dp_sum(loss);
}

void Trainer::log_step(const StepStats& s, double elapsed) {
  const TrainConfig& t = cfg_.train;
  metrics_.write({{"type", "train"}, {"step", s.step}, {"loss", s.loss}, {"lr", s.lr}, {"grad_norm", s.grad_norm},
                  {"step_seconds", s.seconds}, {"tokens_per_s", s.tokens / s.seconds}, {"elapsed_s", elapsed},
                  {"lora_grad_bytes", s.lora_grad_bytes}, {"tp_activation_bytes", s.tp_bytes},
                  {"skipped", s.skipped}, {"skipped_steps", skipped_steps_}});
  if (is_logger() && (s.step % t.log_every == 0 || s.step == t.steps || s.step == 1)) {
    std::printf("%s\n", progress_line(s.step, t.steps, s.loss, s.lr, s.tokens / s.seconds, elapsed).c_str());
    std::fflush(stdout);
  }
}

LoraSlices Trainer::slices() {
  return LoraSlices{model_->trainable_layout(), model_->dims().tp_rank, model_->trainable_params().data(),
                    adamw_.m.data(), adamw_.v.data()};
}

const BaseFingerprint& Trainer::fingerprint() {
  // Only world rank 0 writes and verifies checkpoints; for init: file this reads the whole
  // weights file, so the other ranks never pay for it.
  if (!have_fingerprint_ && is_logger()) fingerprint_ = base_fingerprint(cfg_.model);
  have_fingerprint_ = true;
  return fingerprint_;
}

bool Trainer::resume() {
  const std::optional<CheckpointInfo> info = resume_checkpoint(comm_, checkpoint_run(cfg_), fingerprint(), slices());
  if (!info) return false;
  // Data order, dropout masks and the LR schedule are functions of (seed, step): restoring
  // the tensors and these counters restores everything.
  model_->upload_trainable();  // the checkpoint's tensors went into the host masters
  step_ = info->counters.step;
  adamw_.step = info->counters.adam_step;
  last_saved_step_ = step_;
  last_checkpoint_ = info->path;
  metrics_.write({{"type", "resume"}, {"step", step_}, {"path", info->path}});
  if (is_logger()) {
    std::printf("resumed from %s at step %d (written at tp=%d dp=%d)\n", info->path.c_str(), step_, info->written_tp,
                info->written_dp);
    for (const std::string& note : info->notes) std::printf("  changed since that checkpoint: %s\n", note.c_str());
    std::fflush(stdout);
  }
  return true;
}

std::string Trainer::write_checkpoint() {
  Watchdog::LongPhase phase(watchdog_, "writing a checkpoint");
  const std::string path = checkpoint_path(cfg_.output.dir, step_);
  save_checkpoint(comm_, checkpoint_run(cfg_), fingerprint(), slices(), TrainCounters{step_, adamw_.step},
                  checkpoint_lr_next(cfg_, step_), path);
  // Only now that the new file is complete may older ones go.
  if (is_logger()) prune_checkpoints(cfg_.output.dir, cfg_.checkpoint.keep_last);
  last_saved_step_ = step_;
  last_save_time_ = Clock::now();
  last_checkpoint_ = path;
  metrics_.write({{"type", "checkpoint"}, {"step", step_}, {"path", path}});
  if (is_logger()) std::printf("checkpoint step %d -> %s\n", step_, path.c_str()), std::fflush(stdout);
  return path;
}

void Trainer::export_adapter() {
  if (model_->full_finetuning()) return export_full_model();
  Watchdog::LongPhase phase(watchdog_, "writing adapter.h5");
  const std::string path = (std::filesystem::path(cfg_.output.dir) / "adapter.h5").string();
  const uint64_t bytes = save_adapter(comm_, cfg_.model, cfg_.lora, fingerprint(), slices(), path);
  if (!is_logger()) return;
  std::printf("adapter: %s (%s, %zu LoRA tensors)\n", path.c_str(), human_bytes(bytes).c_str(),
              model_->lora_layout().tensors.size());
  std::fflush(stdout);
}

void Trainer::export_full_model() {
  // Every tensor gathered over TP (DP rank 0's group), 16 MiB at a time, for world rank 0 to
  // write a base-weights file: the fine-tuned model, for model.init: file (or export --merged's reader).
  Watchdog::LongPhase phase(watchdog_, "writing model.h5");
  const std::string path = (std::filesystem::path(cfg_.output.dir) / "model.h5").string();
  write_gathered_base_weights(comm_, path, model_->base_layout(), model_->base().data());
  comm_.barrier(Group::World);
  if (!is_logger()) return;
  std::printf("model: %s (%s, %zu tensors; full fine-tuning: use it with model.init: file)\n", path.c_str(),
              human_bytes(std::filesystem::file_size(path)).c_str(), model_->base_layout().tensors.size());
  std::fflush(stdout);
}

void Trainer::check_replicas_agree() {
  // Replicated factors are updated independently on every rank from all-reduced gradients;
  // if they ever differ, a collective or the optimizer is broken and continuing would train
  // a different model on each rank.
  if (!replicated_in_sync(comm_, model_->trainable_params().data(), model_->trainable_layout()))
    throw std::runtime_error("the replicated tensors differ across ranks at step " + std::to_string(step_) +
                             " (parallel.check_every); stopping before the replicas drift further");
}

void Trainer::log_run_end() {
  const double mine = static_cast<double>(peak_rss_bytes()) / (1 << 20);
  std::vector<double> per_rank(static_cast<size_t>(comm_.size(Group::World)));
  comm_.all_gather(&mine, 1, per_rank.data(), Group::World);
  // frozen_bytes: TP rank 0's frozen weights, exactly what plan's "base weights" counts.
  metrics_.write({{"type", "end"}, {"step", step_}, {"peak_rss_mib", per_rank},
                  {"dtype", cfg_.model.dtype}, {"frozen_bytes", static_cast<double>(model_->frozen_bytes())}});
  if (!is_logger()) return;
  const auto top = std::max_element(per_rank.begin(), per_rank.end());
  std::printf("peak RSS: %.1f MiB on rank %d (the largest of %zu ranks; metrics.jsonl has each)\n", *top,
              static_cast<int>(top - per_rank.begin()), per_rank.size());
  if (backend_->on_gpu())
    std::printf("GPU memory in use on rank 0's device: %.1f MiB\n", backend_->device_bytes_in_use() / 1048576.0);
  std::fflush(stdout);
}

Trainer::StepEnd Trainer::agree_at_step_end() {
  // A signal may reach only some ranks, and only rank 0's clock decides every_minutes, yet
  // every rank must take the same branch: one all-reduce (max) of two floats per step.
  const double minutes = cfg_.checkpoint.every_minutes;
  const bool time_due = is_logger() && minutes > 0 && seconds_since(last_save_time_) >= minutes * 60;
  float v[2] = {static_cast<float>(preemption_signal()), time_due ? 1.0f : 0.0f};
  comm_.all_reduce_max(v, 2, Group::World);
  return StepEnd{static_cast<int>(v[0]), v[1] > 0};
}

RunOutcome Trainer::run() {
  const TrainConfig& t = cfg_.train;
  const int every = cfg_.checkpoint.every;
  {
    Watchdog::LongPhase phase(watchdog_, "resuming from a checkpoint");
    agree_on_failure<InputError>(comm_, Group::World, kExitBadInput, "read its slice of the checkpoint", [&] { resume(); });
  }
  const auto t0 = Clock::now();
  last_save_time_ = t0;
  auto eval = [&]() {
    if (!val_sampler_) return;
    const double v = evaluate();
    metrics_.write({{"type", "eval"}, {"step", step_}, {"val_loss", v}});
    if (is_logger()) std::printf("eval step %d | val_loss %.4f\n", step_, v), std::fflush(stdout);
  };
  if (step_ == 0) eval();  // the starting point the curve is read against
  while (step_ < t.steps) {
    if (watchdog_) watchdog_->step_started(step_);
    const StepStats s = train_step();
    if (watchdog_) watchdog_->step_finished(s.seconds);
    log_step(s, seconds_since(t0));
    // The eval of a step comes before its checkpoint: a run stopped at any point after that
    // checkpoint resumes past this step and would never write its eval otherwise.
    if ((t.eval_every > 0 && step_ % t.eval_every == 0) || step_ == t.steps) eval();
    const StepEnd end = agree_at_step_end();
    if (end.signal && step_ < t.steps) {  // at the last step, finishing is the better answer
      preempted_by_ = end.signal;
      write_checkpoint();
      return RunOutcome::Preempted;
    }
    if ((every > 0 && step_ % every == 0) || end.save_due) write_checkpoint();
    if (cfg_.parallel.check_every > 0 && step_ % cfg_.parallel.check_every == 0) check_replicas_agree();
  }
  if (last_saved_step_ != step_) write_checkpoint();
  export_adapter();
  log_run_end();
  return RunOutcome::Finished;
}

}  // namespace lora
