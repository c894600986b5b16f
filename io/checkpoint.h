// Training checkpoints in HDF5 (DESIGN §6): one file per checkpoint holding every LoRA
// factor and its AdamW moments in the full, unsharded shape, so that a run on any tp x dp
// layout can resume it. The schema, as `h5ls -r` and `h5dump -A` show it, is in
// io/CHECKPOINTS.md; the attribute names below are the ones written there.
//
//   <output.dir>/checkpoints/step_00000040.h5
//     /adapter/h.<l>.lora.<t>.{A,B}        float32 [r, in] / [out, r]; LoRA config as attributes
//     /optimizer/m/<same names>            AdamW first moment; /optimizer: adam_step, betas, eps
//     /optimizer/v/<same names>            AdamW second moment
//     /state                               attributes only: step, data cursor, seeds, LR
//                                          schedule, model shape, base fingerprint
//   every file sealed in its 512-byte HDF5 user block (io/file_seal.h)
//   <output.dir>/adapter.h5                /adapter alone: the artefact users keep
//   full fine-tuning (lora.enabled: false): /model/<base tensor names> instead of /adapter
//   (attribute full_finetuning), and the artefact is <output.dir>/model.h5, a base-weights
//   file (io/base_weights.h) that model.init: file reads
//
// Who does what: saving is collective (the TP group of DP rank 0 all-gathers the sharded
// factors; world rank 0 writes); verifying is one process (rank 0); loading is collective
// (rank 0 chooses and verifies the file, then every rank reads its own slice by hyperslab).
#pragma once
#include <cstdint>
#include <iosfwd>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "io/input_error.h"
#include "model/config.h"
#include "model/param_layout.h"

namespace lora {

// What checkpoint writing and verifying read of a run's configuration, each field under the
// run.yaml key it comes from (messages name those keys: "train.seed", "optim.lr"). The
// trainer builds it from its RunConfig (trainer/train/checkpoint_run.h): io/ never sees the
// run's config. Adapter files need only the model: and lora: sections, passed on their own.
struct CheckpointRun {
  ModelConfig model;  // model: shape, base (fingerprint description, dtype), init_seed
  LoraConfig lora;    // lora: r, alpha, rslora, dropout, targets; enabled false: full fine-tuning
  struct Train {      // train: the data cursor (step * batch_size), the schedule's length, the seed
    int steps = 0;
    int batch_size = 0;
    int seq_len = 0;
    uint64_t seed = 0;
  } train;
  struct Optim {      // optim: AdamW's settings and the LR schedule, recorded in the file
    float lr = 0;
    float weight_decay = 0;
    float beta1 = 0, beta2 = 0, eps = 0;
    int warmup_steps = 0;
    std::string decay;
    float min_lr_ratio = 0;
  } optim;
  std::string resume = "none";  // checkpoint.resume: "none" | "auto" | a checkpoint path
  std::string output_dir;       // output.dir: resume: auto looks in checkpoint_dir(output_dir)
};

// A checkpoint or adapter file that cannot be used; an InputError, so lora_dist exits with
// kExitBadInput (3) for it. Corrupt: the file itself is bad (no seal, seal does not verify:
// truncated, flipped bits, not written by this version); `resume: auto` then falls back to
// an older one. Mismatch: a file that verifies but was written for another model, base or
// adapter shape. Invalid: a file that verifies but holds values no run can continue from (a
// step out of range, a NaN in a tensor). Mismatch and Invalid are never skipped silently:
// the older files of that folder were written by the same run.
struct CheckpointError : InputError {
  enum Kind { Corrupt, Mismatch, Invalid };
  CheckpointError(Kind k, const std::string& what) : InputError(what), kind(k) {}
  Kind kind;
};

// The identity of the frozen base weights, which an adapter only makes sense on top of.
// init: seed -> hash of (init, init_seed, init_std, model shape); init: file -> hash of
// the weights file's bytes (read once, by the one rank that calls this).
struct BaseFingerprint {
  uint64_t hash = 0;
  std::string description;  // for messages: "init: seed, init_seed 1234, init_std 0.02, ..."
};
BaseFingerprint base_fingerprint(const ModelConfig& m);

// This rank's trainable state: its slices, in its own layout, of the parameters and the
// AdamW moments (the same layout, adamw.h): the LoRA factors (LoRA layout), or with full
// fine-tuning (lora.enabled: false) every base tensor (base layout), stored under /model
// instead of /adapter.
struct LoraSlices {
  const ParamLayout& layout;
  int tp_rank;
  float* params;
  float* m;
  float* v;
};

// The counters that, with the tensors, are the whole training state: data order, dropout
// masks and the LR schedule are functions of (train.seed, step) (DESIGN §5).
struct TrainCounters {
  int step = 0;        // optimizer steps completed
  long adam_step = 0;  // AdamW's bias-correction step
};

// What rank 0 learnt about a checkpoint it accepted.
struct CheckpointInfo {
  std::string path;
  TrainCounters counters;
  int written_tp = 0, written_dp = 0;
  std::vector<std::string> notes;  // settings that differ from the run but are allowed
};

// <output_dir>/checkpoints and <output_dir>/checkpoints/step_<8 digits>.h5
std::string checkpoint_dir(const std::string& output_dir);
std::string checkpoint_path(const std::string& output_dir, int step);

// Collective over the world. World rank 0 writes `path` atomically: `path`.tmp, fsync,
// rename, fsync of the folder; a crash at any instant leaves either the previous state
// or the complete new file. `fp` is only read on world rank 0. `lr_next` is the learning
// rate of step c.step (the step a resume runs first; the caller's LR schedule gives it),
// recorded as /state lr_next.
void save_checkpoint(Communicator& comm, const CheckpointRun& run, const BaseFingerprint& fp, const LoraSlices& s,
                     TrainCounters c, float lr_next, const std::string& path);

// Collective; world rank 0 writes the adapter-only file (/adapter and its attributes) and
// returns its size in bytes (0 on the other ranks): the LoRA settings of `lora` and the
// base of `model` as attributes.
uint64_t save_adapter(Communicator& comm, const ModelConfig& model, const LoraConfig& lora, const BaseFingerprint& fp,
                      const LoraSlices& s, const std::string& path);

// Keeps the newest `keep_last` step_*.h5 of checkpoint_dir(output_dir), deleting older
// ones oldest first, and removes *.tmp files that a killed writer left. Call on one rank,
// after a save has completed.
void prune_checkpoints(const std::string& output_dir, int keep_last);

// One process: checks the seal of `path` before libhdf5 opens it (io/file_seal.h), then
// that it fits this run (model shape, base fingerprint, LoRA r and targets, every tensor's
// shape), that its counters are in range and every tensor is finite. Throws
// CheckpointError naming the path and what is wrong or differs.
CheckpointInfo verify_checkpoint(const std::string& path, const CheckpointRun& run, const BaseFingerprint& fp);

// One process (rank 0): the checkpoint that run.resume (checkpoint.resume) asks for, verified.
// "none" -> nullopt. A path -> that file or CheckpointError. "auto" -> the newest
// step_*.h5 of the output folder that verifies; a Corrupt newer one is reported on `log`
// (path and why) and skipped; an empty folder -> nullopt (fresh start); a Mismatch or
// Invalid one -> CheckpointError.
std::optional<CheckpointInfo> select_checkpoint(const CheckpointRun& run, const BaseFingerprint& fp,
                                                std::ostream& log);

// Every rank: reads its slices of a verified checkpoint into `s` by hyperslab and returns
// the counters. Throws CheckpointError if a dataset is missing or mis-shaped, a counter is
// out of range or a value the rank read is not finite.
TrainCounters read_checkpoint(const std::string& path, const LoraSlices& s, bool full_finetuning);

// Reads this rank's slice of every A and B from the /adapter group of a checkpoint or of an
// adapter.h5 into `params` (layout order), verified as a resume verifies: the seal first,
// then the model shape, base fingerprint, r, targets and scale against model, lora and fp,
// every tensor's shape, and every value finite. Throws CheckpointError naming the file and
// what differs.
void read_adapter(const std::string& path, const ModelConfig& model, const LoraConfig& lora, const BaseFingerprint& fp,
                  const LoraLayout& layout, int tp_rank, float* params);

// One process: the LoRA settings an adapter.h5 or a checkpoint records on /adapter (r,
// alpha, rslora, dropout, targets), read once its seal verifies, for a tool that takes each
// adapter as it was trained (lora_dist analyze) instead of checking it against a run's lora:
// section; read_adapter with them then verifies the rest (model shape, base, tensors). r must
// be >= 1, alpha finite and the targets known names, at least one. Throws CheckpointError
// naming the file and the attribute.
LoraConfig read_adapter_lora_config(const std::string& path);

// Collective: rank 0 runs select_checkpoint (warnings to stderr) and tells every rank the
// outcome; then every rank runs read_checkpoint. Returns nullopt for a fresh start and
// throws the same CheckpointError on every rank when rank 0 refused.
std::optional<CheckpointInfo> resume_checkpoint(Communicator& comm, const CheckpointRun& run,
                                                const BaseFingerprint& fp, const LoraSlices& s);

}  // namespace lora
