// Writing checkpoints: gather, write under a temporary name, seal, make durable, rename
// (io/atomic_h5_file.h).
// Reading and verifying them is io/checkpoint_load.cpp.
#include "io/checkpoint.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <regex>

#include "io/atomic_h5_file.h"
#include "io/checkpoint_hash.h"
#include "io/checkpoint_schema.h"
#include "io/h5_tensor_slice.h"
#include "io/hdf5_util.h"
#include "io/hf_model_folder.h"

namespace lora {

namespace fs = std::filesystem;

// --- the parts shared with the loader (io/checkpoint_schema.h) ------------------------------

namespace ckpt {

std::string hex64(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%016llx", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace ckpt

// --- paths and the base fingerprint ------------------------------------------------------

std::string checkpoint_dir(const std::string& output_dir) { return (fs::path(output_dir) / "checkpoints").string(); }

std::string checkpoint_path(const std::string& output_dir, int step) {
  char name[32];
  std::snprintf(name, sizeof name, "step_%08d.h5", step);
  return (fs::path(checkpoint_dir(output_dir)) / name).string();
}

namespace {

uint64_t hash_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot read the base weights file to fingerprint it");
  Hash64 h;
  std::vector<char> buf(4 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    h.update(buf.data(), static_cast<size_t>(in.gcount()));
  }
  return h.digest();
}

std::string format_float(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

}  // namespace

BaseFingerprint base_fingerprint(const ModelConfig& m) {
  BaseFingerprint fp;
  if (m.init == "file") {
    fp.hash = hash_file(m.weights_file);
    fp.description = "init: file " + m.weights_file + " (" + std::to_string(fs::file_size(m.weights_file)) + " bytes)";
    return fp;
  }
  if (m.init == "hf") {  // config.json, then the weight files (the index first when sharded)
    Hash64 h;
    uintmax_t bytes = 0;
    std::vector<std::string> files = HfModelFolder::weight_file_paths(m.path);
    files.insert(files.begin(), (fs::path(m.path) / "config.json").string());
    for (const std::string& f : files) {
      h.add(hash_file(f));
      bytes += fs::file_size(f);
    }
    fp.hash = h.digest();
    fp.description = "init: hf " + m.path + " (" + std::to_string(files.size()) + " files, " + std::to_string(bytes) + " bytes)";
    return fp;
  }
  // A seeded base is a pure function of these (model/gpt.cpp init_base_from_seed).
  Hash64 h;
  h.add(m.init).add(m.init_seed).add(m.init_std);
  for (const auto& f : ckpt::kModelShape) h.add(m.*f.field);
  if (m.arch != "gpt") {  // GPT's hash stays what it was before there was another architecture
    const ArchSpec a = arch_spec(m);
    h.add(m.arch);
    for (const auto& f : ckpt::kArchShape) h.add(a.*f.field);
  }
  fp.hash = h.digest();
  fp.description = "init: seed, init_seed " + std::to_string(m.init_seed) + ", init_std " + format_float(m.init_std);
  return fp;
}

// --- writing (world rank 0 only) ----------------------------------------------------------

namespace {

void write_lora_attrs(hid_t adapter, const LoraConfig& l) {
  h5_write_attr(adapter, "r", l.r);
  h5_write_attr(adapter, "alpha", l.alpha);
  h5_write_attr(adapter, "rslora", l.rslora);
  h5_write_attr(adapter, "dropout", l.dropout);
  h5_write_attr(adapter, "targets", l.target_list());
  h5_write_attr(adapter, "scale", l.scale());
}

// The base model an adapter belongs to: its shape and weights fingerprint.
void write_base_attrs(hid_t obj, const ModelConfig& m, const BaseFingerprint& fp) {
  for (const auto& f : ckpt::kModelShape) h5_write_attr(obj, f.name, m.*f.field);
  const ArchSpec a = arch_spec(m);
  h5_write_attr(obj, "arch", m.arch);
  for (const auto& f : ckpt::kArchShape) h5_write_attr(obj, f.name, a.*f.field);
  h5_write_attr(obj, "base_init", m.init);
  h5_write_attr(obj, "base_dtype", m.dtype);
  h5_write_attr(obj, "base_fingerprint", fp.hash);
  h5_write_attr(obj, "base_description", fp.description);
}

void write_optimizer_attrs(hid_t optimizer, const CheckpointRun::Optim& o, TrainCounters c) {
  h5_write_attr(optimizer, "adam_step", c.adam_step);
  h5_write_attr(optimizer, "beta1", o.beta1);
  h5_write_attr(optimizer, "beta2", o.beta2);
  h5_write_attr(optimizer, "eps", o.eps);
  h5_write_attr(optimizer, "weight_decay", o.weight_decay);
}

void write_state_attrs(hid_t state, const CheckpointRun& run, const BaseFingerprint& fp, TrainCounters c,
                       float lr_next, const Communicator& comm) {
  const CheckpointRun::Train& t = run.train;
  const CheckpointRun::Optim& o = run.optim;
  h5_write_attr(state, "format", ckpt::kFormat);
  h5_write_attr(state, "step", c.step);
  // The data cursor: step s reads samples [s*batch_size, (s+1)*batch_size) (DESIGN §5).
  h5_write_attr(state, "samples_consumed", static_cast<int64_t>(c.step) * t.batch_size);
  h5_write_attr(state, "batch_size", t.batch_size);
  h5_write_attr(state, "seq_len", t.seq_len);
  h5_write_attr(state, "total_steps", t.steps);
  h5_write_attr(state, "seed", t.seed);
  h5_write_attr(state, "init_seed", run.model.init_seed);
  h5_write_attr(state, "rng",
                "Philox4x32-10, counter-based (model/rng.h): LoRA init, dropout masks and data order are pure "
                "functions of (seed, step, ...), so seed and step are the whole RNG state");
  h5_write_attr(state, "lr", o.lr);
  h5_write_attr(state, "warmup_steps", o.warmup_steps);
  h5_write_attr(state, "decay", o.decay);
  h5_write_attr(state, "min_lr_ratio", o.min_lr_ratio);
  h5_write_attr(state, "lr_next", lr_next);  // the LR of the step a resume runs first
  write_base_attrs(state, run.model, fp);
  h5_write_attr(state, "written_tp", comm.size(Group::TP));
  h5_write_attr(state, "written_dp", comm.size(Group::DP));
}

}  // namespace

void save_checkpoint(Communicator& comm, const CheckpointRun& run, const BaseFingerprint& fp, const LoraSlices& s,
                     TrainCounters c, float lr_next, const std::string& path) {
  std::optional<AtomicH5File> out;
  const bool full = !run.lora.enabled;
  if (comm.rank(Group::World) == 0) {
    out.emplace(path);
    for (const char* g : ckpt::groups(full)) out->group(g);
  }
  for (const auto& g : ckpt::tensor_groups(full)) h5_write_gathered_tensors(comm, s.layout, s.*g.buffer, out ? &*out : nullptr, g.path);
  if (out) {
    if (full) h5_write_attr(out->group("/model"), "full_finetuning", true);
    else write_lora_attrs(out->group("/adapter"), run.lora);
    write_optimizer_attrs(out->group("/optimizer"), run.optim, c);
    const hid_t state = out->group("/state");
    write_state_attrs(state, run, fp, c, lr_next, comm);
    out->commit();
  }
  comm.barrier(Group::World);  // no rank goes on (and perhaps exits) before the file is in place
}

uint64_t save_adapter(Communicator& comm, const ModelConfig& model, const LoraConfig& lora, const BaseFingerprint& fp,
                      const LoraSlices& s, const std::string& path) {
  std::optional<AtomicH5File> out;
  if (comm.rank(Group::World) == 0) out.emplace(path);
  h5_write_gathered_tensors(comm, s.layout, s.params, out ? &*out : nullptr, "/adapter");
  uint64_t bytes = 0;
  if (out) {
    const hid_t adapter = out->group("/adapter");
    write_lora_attrs(adapter, lora);
    write_base_attrs(adapter, model, fp);
    out->commit();
    bytes = fs::file_size(path);
  }
  comm.barrier(Group::World);
  return bytes;
}

// --- keep_last ---------------------------------------------------------------------------

void prune_checkpoints(const std::string& output_dir, int keep_last) {
  const fs::path dir = checkpoint_dir(output_dir);
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return;
  static const std::regex kName(R"(step_(\d{8})\.h5)"), kTmp(R"(step_\d{8}\.h5\.tmp)");
  std::map<int, fs::path> by_step;  // ordered oldest first
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    std::smatch m;
    if (std::regex_match(name, m, kName)) by_step.emplace(std::stoi(m[1]), e.path());
    else if (std::regex_match(name, kTmp)) fs::remove(e.path(), ec);  // left by a killed writer
  }
  while (by_step.size() > static_cast<size_t>(std::max(1, keep_last))) {
    fs::remove(by_step.begin()->second, ec);
    by_step.erase(by_step.begin());
  }
}

}  // namespace lora
