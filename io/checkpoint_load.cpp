// Reading checkpoints: verify on rank 0 (whole, then compatible), choose for resume: auto,
// then every rank reads its own slices by hyperslab. Writing is io/checkpoint.cpp.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <map>
#include <ostream>
#include <regex>
#include <sstream>

#include "io/checkpoint.h"
#include "io/checkpoint_schema.h"
#include "io/h5_tensor_slice.h"
#include "io/hdf5_util.h"

namespace lora {

namespace fs = std::filesystem;

namespace {

H5Handle open_group(hid_t file, const std::string& path, const std::string& group) {
  return H5Handle(h5_check(H5Gopen2(file, group.c_str(), H5P_DEFAULT), path, "incomplete checkpoint: no group " + group),
                  H5Gclose);
}

// --- integrity ---------------------------------------------------------------------------

// Opens `path` and checks that it is a whole checkpoint: HDF5, the right format, and the
// stored checksum equal to the one computed over its contents. Throws CheckpointError(Corrupt).
H5Handle open_verified(const std::string& path) {
  h5_quiet();
  if (!fs::is_regular_file(path)) throw CheckpointError(CheckpointError::Corrupt, path + ": no such checkpoint file");
  H5Handle file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, h5_fapl_unlocked()), H5Fclose);
  if (!file.valid())
    throw CheckpointError(CheckpointError::Corrupt, path + ": not a readable HDF5 file (truncated or corrupted)");
  try {
    H5Handle state = open_group(file, path, "/state");
    const std::string format = h5_read_attr<std::string>(state, "format", path, "/state");
    if (format != ckpt::kFormat)
      throw CheckpointError(CheckpointError::Corrupt, path + ": not a lora_dist checkpoint (format '" + format + "')");
    const uint64_t stored = h5_read_attr<uint64_t>(state, "checksum", path, "/state");
    const uint64_t computed = ckpt::file_checksum(file, path);
    if (stored != computed)
      throw CheckpointError(CheckpointError::Corrupt, path + ": checksum mismatch: stored " + ckpt::hex64(stored) +
                                                          ", computed " + ckpt::hex64(computed) +
                                                          " (the file is corrupted or was modified)");
  } catch (const CheckpointError&) {
    throw;
  } catch (const std::runtime_error& e) {  // an unreadable part: "<path>: what"
    throw CheckpointError(CheckpointError::Corrupt, std::string(e.what()) + " (truncated or corrupted)");
  }
  return file;
}

// --- compatibility -----------------------------------------------------------------------

template <typename T>
std::string str(const T& v) {
  std::ostringstream o;
  o << v;
  return o.str();
}

// "name A in the checkpoint, B in this run" for each field that differs.
class Differences {
 public:
  template <typename T>
  void check(const std::string& name, const T& in_file, const T& in_run) {
    if (!(in_file == in_run)) items_.push_back(name + " " + str(in_file) + " in the checkpoint, " + str(in_run) + " in this run");
  }
  bool empty() const { return items_.empty(); }
  const std::vector<std::string>& items() const { return items_; }
  std::string joined() const {
    std::string s;
    for (const auto& i : items_) s += (s.empty() ? "" : ", ") + i;
    return s;
  }

 private:
  std::vector<std::string> items_;
};

// What must match for the adapter to mean anything in this run; every problem found goes
// into one message, each part saying what differs. Throws CheckpointError(Mismatch).
void check_compatible(hid_t file, const std::string& path, const RunConfig& cfg, const BaseFingerprint& fp) {
  H5Handle state = open_group(file, path, "/state"), adapter = open_group(file, path, "/adapter");
  std::vector<std::string> problems;

  Differences shape;
  for (const auto& f : ckpt::kModelShape)
    shape.check(f.name, h5_read_attr<int>(state, f.name, path, "/state"), cfg.model.*f.field);
  if (!shape.empty()) problems.push_back("model shape differs: " + shape.joined());

  // A seeded base's fingerprint hashes the shape too, so it only adds news when the shapes agree.
  const uint64_t file_fp = h5_read_attr<uint64_t>(state, "base_fingerprint", path, "/state");
  if (shape.empty() && file_fp != fp.hash)
    problems.push_back("base model fingerprint differs: " + ckpt::hex64(file_fp) + " (" +
                       h5_read_attr<std::string>(state, "base_description", path, "/state") +
                       ") in the checkpoint, " + ckpt::hex64(fp.hash) + " (" + fp.description + ") in this run");

  Differences r, targets;
  r.check("r", h5_read_attr<int>(adapter, "r", path, "/adapter"), cfg.lora.r);
  if (!r.empty()) problems.push_back("LoRA rank r differs: " + r.joined());
  targets.check("targets", h5_read_attr<std::string>(adapter, "targets", path, "/adapter"),
                cfg.lora.target_list());
  if (!targets.empty()) problems.push_back("LoRA targets differ: " + targets.joined());

  if (problems.empty()) return;
  std::string msg = path + ": checkpoint does not fit this run: ";
  for (size_t i = 0; i < problems.size(); ++i) msg += (i ? "; " : "") + problems[i];
  throw CheckpointError(CheckpointError::Mismatch, msg);
}

// Settings a resume may change (a new LR, more steps...), each a note for the log. The
// data order continues from step * batch_size, so a new batch_size moves the data cursor.
std::vector<std::string> changed_settings(hid_t file, const std::string& path, const RunConfig& cfg) {
  H5Handle state = open_group(file, path, "/state"), adapter = open_group(file, path, "/adapter");
  auto f64 = [&](hid_t obj, const char* name, const char* where) { return h5_read_attr<double>(obj, name, path, where); };
  auto i64 = [&](hid_t obj, const char* name, const char* where) { return h5_read_attr<int64_t>(obj, name, path, where); };
  Differences d;
  d.check("lora.alpha", f64(adapter, "alpha", "/adapter"), double(cfg.lora.alpha));
  d.check("lora.rslora", i64(adapter, "rslora", "/adapter"), int64_t(cfg.lora.rslora));
  d.check("lora.dropout", f64(adapter, "dropout", "/adapter"), double(cfg.lora.dropout));
  d.check("train.seed", h5_read_attr<uint64_t>(state, "seed", path, "/state"), cfg.train.seed);
  d.check("train.batch_size", i64(state, "batch_size", "/state"), int64_t(cfg.train.batch_size));
  d.check("train.steps", i64(state, "total_steps", "/state"), int64_t(cfg.train.steps));
  d.check("optim.lr", f64(state, "lr", "/state"), double(cfg.optim.lr));
  d.check("optim.warmup_steps", i64(state, "warmup_steps", "/state"), int64_t(cfg.optim.warmup_steps));
  d.check("optim.decay", h5_read_attr<std::string>(state, "decay", path, "/state"), cfg.optim.decay);
  d.check("optim.min_lr_ratio", f64(state, "min_lr_ratio", "/state"), double(cfg.optim.min_lr_ratio));
  return d.items();
}

TrainCounters read_counters(hid_t file, const std::string& path) {
  H5Handle state = open_group(file, path, "/state"), optimizer = open_group(file, path, "/optimizer");
  return {h5_read_attr<int>(state, "step", path, "/state"), h5_read_attr<long>(optimizer, "adam_step", path, "/optimizer")};
}

// --- this rank's slice -------------------------------------------------------------------

// Rank 0's decision, as every rank learns it.
struct Decision {
  enum : int32_t { Fresh, Load, Refuse } what = Fresh;
  int32_t kind = 0;  // CheckpointError::Kind when Refuse
};

void broadcast_string(Communicator& comm, std::string& s) {
  uint64_t n = s.size();
  comm.broadcast(&n, sizeof n, 0, Group::World);
  s.resize(n);
  if (n > 0) comm.broadcast(s.data(), n, 0, Group::World);
}

}  // namespace

CheckpointInfo verify_checkpoint(const std::string& path, const RunConfig& cfg, const BaseFingerprint& fp) {
  H5Handle file = open_verified(path);
  try {
    check_compatible(file, path, cfg, fp);
    CheckpointInfo info;
    info.path = path;
    info.counters = read_counters(file, path);
    H5Handle state = open_group(file, path, "/state");
    info.written_tp = h5_read_attr<int>(state, "written_tp", path, "/state");
    info.written_dp = h5_read_attr<int>(state, "written_dp", path, "/state");
    info.notes = changed_settings(file, path, cfg);
    return info;
  } catch (const CheckpointError&) {
    throw;
  } catch (const std::runtime_error& e) {  // whole, yet lacking an attribute: not written by this version
    throw CheckpointError(CheckpointError::Corrupt, e.what());
  }
}

std::optional<CheckpointInfo> select_checkpoint(const RunConfig& cfg, const BaseFingerprint& fp, std::ostream& log) {
  const std::string& mode = cfg.checkpoint.resume;
  if (mode == "none") return std::nullopt;
  if (mode != "auto") return verify_checkpoint(mode, cfg, fp);

  const fs::path dir = checkpoint_dir(cfg.output.dir);
  std::map<int, std::string, std::greater<int>> by_step;  // newest first
  static const std::regex kName(R"(step_(\d{8})\.h5)");
  std::error_code ec;
  if (fs::is_directory(dir, ec))
    for (const auto& e : fs::directory_iterator(dir, ec)) {
      const std::string name = e.path().filename().string();
      std::smatch m;
      if (std::regex_match(name, m, kName)) by_step.emplace(std::stoi(m[1]), e.path().string());
    }
  for (const auto& [step, path] : by_step) {
    try {
      return verify_checkpoint(path, cfg, fp);
    } catch (const CheckpointError& e) {
      if (e.kind == CheckpointError::Mismatch) throw;
      log << "lora_dist: warning: skipping checkpoint " << e.what() << "; trying the previous one" << std::endl;
    }
  }
  log << "lora_dist: resume: auto found " << (by_step.empty() ? "no checkpoint" : "no usable checkpoint") << " in "
      << dir.string() << "; starting from step 0" << std::endl;
  return std::nullopt;
}

namespace {
// Reads every LoRA tensor of `layout` from `group` of the open file: this rank's slice of each.
void read_tensor_group(hid_t file, const std::string& path, const char* group_path, const LoraLayout& layout,
                       int tp_rank, float* buffer) {
  H5Handle group = open_group(file, path, group_path);
  for (const TensorSpec& spec : layout.tensors) {
    const std::string name = std::string(group_path) + "/" + spec.name;
    H5Handle ds(h5_check(H5Dopen2(group, spec.name.c_str(), H5P_DEFAULT), path, "missing dataset " + name), H5Dclose);
    const std::vector<hsize_t> shape = h5_shape(ds);
    if (shape != std::vector<hsize_t>{hsize_t(spec.rows), hsize_t(spec.cols)})
      throw std::runtime_error(path + ": dataset " + name + " does not have the shape [" + std::to_string(spec.rows) +
                               ", " + std::to_string(spec.cols) + "] of this run");
    h5_read_rank_slice(ds, path, name, spec, tp_rank, buffer + spec.offset);
  }
}

H5Handle open_readonly(const std::string& path, const char* what) {
  h5_quiet();
  return H5Handle(h5_check(H5Fopen(path.c_str(), H5F_ACC_RDONLY, h5_fapl_unlocked()), path, what), H5Fclose);
}
}  // namespace

TrainCounters read_checkpoint(const std::string& path, const LoraSlices& s) {
  H5Handle file = open_readonly(path, "cannot open checkpoint");
  for (const auto& g : ckpt::kTensorGroups) read_tensor_group(file, path, g.path, s.layout, s.tp_rank, s.*g.buffer);
  return read_counters(file, path);
}

void read_adapter(const std::string& path, const LoraConfig& lc, const LoraLayout& layout, int tp_rank, float* params) {
  H5Handle file = open_readonly(path, "cannot open adapter file");
  H5Handle adapter = open_group(file, path, "/adapter");
  const double scale = h5_read_attr<double>(adapter, "scale", path, "/adapter");
  if (std::abs(scale - lc.scale()) > 1e-6 * std::abs(scale))
    throw std::runtime_error(path + ": the adapter was trained with LoRA scale " + std::to_string(scale) +
                             " (alpha/r), the config gives " + std::to_string(lc.scale()) + ": set lora.alpha, r and "
                             "rslora as in training");
  read_tensor_group(file, path, "/adapter", layout, tp_rank, params);
}

std::optional<CheckpointInfo> resume_checkpoint(Communicator& comm, const RunConfig& cfg, const BaseFingerprint& fp,
                                                const LoraSlices& s) {
  Decision d;
  std::string text;  // the path to load, or why rank 0 refused
  std::optional<CheckpointInfo> info;
  if (comm.rank(Group::World) == 0) {
    try {
      info = select_checkpoint(cfg, fp, std::cerr);
      if (info) d.what = Decision::Load, text = info->path;
    } catch (const CheckpointError& e) {
      d.what = Decision::Refuse, d.kind = e.kind, text = e.what();
    }
  }
  comm.broadcast(&d, sizeof d, 0, Group::World);
  broadcast_string(comm, text);
  if (d.what == Decision::Refuse) throw CheckpointError(static_cast<CheckpointError::Kind>(d.kind), text);
  if (d.what == Decision::Fresh) return std::nullopt;
  if (!info) info.emplace(), info->path = text;
  info->counters = read_checkpoint(text, s);
  return info;
}

}  // namespace lora
