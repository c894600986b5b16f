// Reads run.yaml into a RunConfig and validates it (every key's type and range,
// the keys that must agree with each other, and the files it names).
//
// Layout: one YAML mapping per RunConfig section (model, lora, optim, data, train,
// parallel, checkpoint, output), keys named exactly as the struct fields. Every key
// is optional and takes the struct's default, except data.train.
//
// Relative paths -- data.train, data.val, model.weights_file, output.dir and
// checkpoint.resume when it is a path -- are resolved against the directory of the
// YAML file itself, not the current working directory, so a config works from any
// cwd. The RunConfig holds them as absolute, normalized paths. Only paths written in
// the file are resolved: the struct default output.dir "out" stays relative to the
// cwd, and output.metrics stays relative to output.dir. An empty or null data.val /
// model.weights_file means "none".
//
// lora.targets is a YAML list of names among q, k, v, o, fc1, fc2, or one of the
// scalar shortcuts "all" (all six) and "attention" (q, k, v, o).
//
// Checks run in three passes and stop at the first error: (1) each key in document
// order: known key, type, range; (2) keys that must agree with each other (d_model
// and n_head, seq_len and context, batch split, tensor-parallel split, init file;
// with model.init hf the shape comes from model.path's config.json, and a shape key the
// YAML sets too must agree with it);
// (3) files that must exist (data.train, data.val, model.weights_file when
// init: file, checkpoint.resume when a path).
#pragma once
#include <stdexcept>
#include <string>
#include <vector>

#include "trainer/config/run_config.h"

namespace lora {

// Exit status of a config error, and of a bad command line (trainer/main.cpp).
constexpr int kExitConfig = 2;

// what() is "<file>:<line>: <section.key>: <what is wrong> (got <value>)"; a YAML
// syntax error reads "<file>:<line>: yaml: syntax error: <parser message>", a file
// that cannot be read "<file>: cannot read config file".
struct ConfigError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Throws ConfigError on the first problem found.
RunConfig load_run_config(const std::string& yaml_path);

// The optional `device:` section: the device `lora_dist plan` plans for (trainer/plan/plan.h).
// Every command accepts it; only plan reads it (a run uses the machine it runs on).
struct DeviceConfig {
  std::string backend = "auto";  // auto | cpu | cuda (trainer/machine/compute_backend.h)
  std::string comm = "auto";     // the model's collectives on CUDA: auto (= nccl) | nccl | mpi (host-staged)
  std::string preset = "cpu";  // trainer/devices/device_spec.h: cpu, a100-80gb, h100-80gb, h200-141gb
  int devices_per_node = 0;    // ranks per node; 0 = the preset's (8 for the GPU presets)
};

// The same, with `overrides` ("section.key=value", plan's --set) applied over the file's
// document before any check, so an override is validated like a key of the file and a
// message about it names it ("--set parallel.tp=3") instead of a line. A value is read as
// YAML: lora.targets=[q,v] is a list. `device`, when not null, receives the device section.
RunConfig load_run_config(const std::string& yaml_path, const std::vector<std::string>& overrides,
                          DeviceConfig* device = nullptr);

}  // namespace lora
