#include "trainer/train/checkpoint_run.h"

#include "trainer/train/lr_schedule.h"

namespace lora {

CheckpointRun checkpoint_run(const RunConfig& cfg) {
  CheckpointRun r;
  r.model = cfg.model;
  r.lora = cfg.lora;
  r.train.steps = cfg.train.steps;
  r.train.batch_size = cfg.train.batch_size;
  r.train.seq_len = cfg.train.seq_len;
  r.train.seed = cfg.train.seed;
  const OptimConfig& o = cfg.optim;
  r.optim.lr = o.lr;
  r.optim.weight_decay = o.weight_decay;
  r.optim.beta1 = o.beta1;
  r.optim.beta2 = o.beta2;
  r.optim.eps = o.eps;
  r.optim.warmup_steps = o.warmup_steps;
  r.optim.decay = o.decay;
  r.optim.min_lr_ratio = o.min_lr_ratio;
  r.resume = cfg.checkpoint.resume;
  r.output_dir = cfg.output.dir;
  return r;
}

float checkpoint_lr_next(const RunConfig& cfg, int step) { return learning_rate(cfg.optim, step, cfg.train.steps); }

}  // namespace lora
