// A run's config as io/checkpoint sees it: the one place that maps run.yaml's sections onto
// CheckpointRun, so that io/ includes no trainer header.
#pragma once
#include "io/checkpoint.h"
#include "trainer/config/run_config.h"

namespace lora {

// model:, lora:, the train: and optim: keys a checkpoint records or a resume checks,
// checkpoint.resume and output.dir.
CheckpointRun checkpoint_run(const RunConfig& cfg);

// save_checkpoint's lr_next for a checkpoint after `step` optimizer steps: the LR of the step
// a resume runs first (trainer/train/lr_schedule.h).
float checkpoint_lr_next(const RunConfig& cfg, int step);

}  // namespace lora
