// Reading checkpoints: verify on rank 0 (the seal before libhdf5 parses anything, then
// compatible, in range and finite), choose for resume: auto, then every rank reads its own
// slices by hyperslab. Writing is io/checkpoint.cpp.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <iostream>
#include <map>
#include <ostream>
#include <regex>
#include <sstream>

#include "io/checkpoint.h"
#include "io/checkpoint_schema.h"
#include "io/file_seal.h"
#include "io/h5_tensor_slice.h"
#include "io/hdf5_util.h"

namespace lora {

namespace fs = std::filesystem;

namespace {

H5Handle open_group(hid_t file, const std::string& path, const std::string& group) {
  return H5Handle(h5_check(H5Gopen2(file, group.c_str(), H5P_DEFAULT), path, "no group " + group), H5Gclose);
}

// Runs fn(); an error that is not yet a CheckpointError becomes one: a non-finite value
// (InputError) is Invalid, anything else (a missing attribute, an unreadable dataset) `kind`.
template <typename Fn>
auto as_checkpoint_error(CheckpointError::Kind kind, Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const CheckpointError&) {
    throw;
  } catch (const InputError& e) {
    throw CheckpointError(CheckpointError::Invalid, e.what());
  } catch (const std::runtime_error& e) {
    throw CheckpointError(kind, e.what());
  }
}

// --- integrity ---------------------------------------------------------------------------

// Checks the seal of `path` with plain reads, and only then lets libhdf5 open it: a file
// that fails is never parsed. Throws CheckpointError(Corrupt) for a missing, unsealed or
// damaged file.
H5Handle open_sealed(const std::string& path) {
  h5_quiet();
  if (!fs::is_regular_file(path)) throw CheckpointError(CheckpointError::Corrupt, path + ": no such file");
  try {
    verify_seal(path);
  } catch (const std::runtime_error& e) {  // SealError, or an I/O error reading it
    throw CheckpointError(CheckpointError::Corrupt, e.what());
  }
  H5Handle file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, h5_fapl_unlocked()), H5Fclose);
  if (!file.valid())
    throw CheckpointError(CheckpointError::Invalid, path + ": the seal verifies, but libhdf5 cannot open the file");
  return file;
}

// A sealed file that is a checkpoint of this format (an adapter.h5 or a v1 file is not).
H5Handle open_verified(const std::string& path) {
  H5Handle file = open_sealed(path);
  as_checkpoint_error(CheckpointError::Mismatch, [&] {
    if (H5Lexists(file, "state", H5P_DEFAULT) <= 0)
      throw std::runtime_error(path + ": not a lora_dist checkpoint (no /state group; an adapter file?)");
    H5Handle state = open_group(file, path, "/state");
    const std::string format = h5_read_attr<std::string>(state, "format", path, "/state");
    if (format != ckpt::kFormat)
      throw std::runtime_error(path + ": not a '" + ckpt::kFormat + "' file (format '" + format + "')");
  });
  return file;
}

template <typename T>
std::string str(const T& v) {
  std::ostringstream o;
  o << v;
  return o.str();
}

// --- values no run can produce -------------------------------------------------------------

// The seal proves that a file is what its writer wrote, not that the writer was right: a file
// edited by a tool and resealed, or written by a faulty writer, can hold values that no run
// produces. Each setting a resume, merge or generate reads back is refused outside the range
// the config loader accepts for the key it mirrors (lora.alpha > 0, optim.beta2 in [0, 1), ...),
// naming the attribute and the key. Throws CheckpointError(Invalid).
struct Range {
  double lo, hi;
  bool lo_open, hi_open;
  std::string text() const {
    return std::string(lo_open ? "(" : "[") + bound(lo) + ", " + bound(hi) + (hi_open ? ")" : "]");
  }
  // Whole bounds in full (INT_MAX, not 2.14748e+09), others as str() writes them.
  static std::string bound(double b) {
    if (std::isinf(b)) return "inf";
    return b == std::trunc(b) && std::abs(b) < 1e15 ? std::to_string(static_cast<int64_t>(b)) : str(b);
  }
  bool holds(double v) const { return (lo_open ? v > lo : v >= lo) && (hi_open ? v < hi : v <= hi); }
};
constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr Range at_least(double lo) { return {lo, kInf, false, true}; }
constexpr Range above(double lo) { return {lo, kInf, true, true}; }
constexpr Range half_open(double lo, double hi) { return {lo, hi, false, true}; }
constexpr Range closed(double lo, double hi) { return {lo, hi, false, false}; }

class AttributeCheck {
 public:
  AttributeCheck(hid_t obj, const std::string& path, const char* where) : obj_(obj), path_(path), where_(where) {}

  // A float attribute: finite and inside `range`; `mirrors` names the config key it records.
  double real(const char* name, Range range, const std::string& mirrors) const {
    const double v = h5_read_attr<double>(obj_, name, path_, where_);
    if (!std::isfinite(v)) refuse(name, str(v) + " is not a finite number (" + mirrors + ")");
    if (!range.holds(v)) refuse(name, str(v) + " is outside " + range.text() + " (" + mirrors + ")");
    return v;
  }
  int64_t integer(const char* name, Range range, const std::string& mirrors) const {
    const int64_t v = h5_read_attr<int64_t>(obj_, name, path_, where_);
    if (!range.holds(double(v))) refuse(name, std::to_string(v) + " is outside " + range.text() + " (" + mirrors + ")");
    return v;
  }
  std::string one_of(const char* name, const std::vector<std::string>& valid, const std::string& mirrors) const {
    const std::string v = h5_read_attr<std::string>(obj_, name, path_, where_);
    if (std::find(valid.begin(), valid.end(), v) != valid.end()) return v;
    std::string list;
    for (const std::string& n : valid) list += (list.empty() ? "" : ", ") + n;
    refuse(name, "'" + v + "' is not one of " + list + " (" + mirrors + ")");
  }
  [[noreturn]] void refuse(const char* name, const std::string& why) const {
    throw CheckpointError(CheckpointError::Invalid, path_ + ": " + where_ + ": attribute '" + name + "' = " + why);
  }

 private:
  hid_t obj_;
  const std::string& path_;
  const char* where_;
};

// The counters, each refused unless in [0, max]: a step beyond the run's train.steps, or a
// negative one, cannot be continued from whatever wrote it.
TrainCounters read_counters(hid_t file, const std::string& path, int64_t max_step, const char* max_step_is) {
  return as_checkpoint_error(CheckpointError::Invalid, [&] {
    H5Handle state = open_group(file, path, "/state"), optimizer = open_group(file, path, "/optimizer");
    TrainCounters c;
    c.step = static_cast<int>(AttributeCheck(state, path, "/state").integer("step", closed(0, double(max_step)), max_step_is));
    c.adam_step = AttributeCheck(optimizer, path, "/optimizer")
                      .integer("adam_step", closed(0, std::numeric_limits<int>::max()), "INT_MAX");
    return c;
  });
}

// /adapter's LoRA hyper-parameters (an adapter.h5 or a checkpoint of a LoRA run): r >= 1,
// alpha > 0, dropout in [0, 1), targets known and not empty, and the scale stored beside them
// the one they give (alpha/r, or alpha/sqrt(r) with rslora), since merge folds it in.
LoraConfig read_lora_attrs(hid_t file, const std::string& path) {
  H5Handle adapter = open_group(file, path, "/adapter");
  const AttributeCheck check(adapter, path, "/adapter");
  LoraConfig lc;
  lc.r = static_cast<int>(check.integer("r", closed(1, std::numeric_limits<int>::max()), "lora.r"));
  lc.alpha = static_cast<float>(check.real("alpha", above(0), "lora.alpha"));
  if (!std::isfinite(lc.alpha)) check.refuse("alpha", str(lc.alpha) + " is not a finite float (lora.alpha)");
  lc.rslora = h5_read_attr<bool>(adapter, "rslora", path, "/adapter");
  lc.dropout = static_cast<float>(check.real("dropout", half_open(0, 1), "lora.dropout"));
  const std::string targets = h5_read_attr<std::string>(adapter, "targets", path, "/adapter");
  std::fill(std::begin(lc.targets), std::end(lc.targets), false);
  std::stringstream names(targets);
  for (std::string name; std::getline(names, name, ',');) {
    const int t = lora_target_of(name);
    if (t < 0) check.refuse("targets", "'" + targets + "': '" + name + "' is not one of " + lora_target_names());
    lc.targets[t] = true;
  }
  if (lc.target_list().empty()) check.refuse("targets", "'" + targets + "' names no target");
  const double scale = check.real("scale", above(0), "lora.alpha / r");
  if (!(std::abs(scale - lc.scale()) <= 1e-6 * lc.scale()))
    check.refuse("scale", str(scale) + ", but alpha " + str(lc.alpha) + " and r " + std::to_string(lc.r) +
                              (lc.rslora ? " with rslora give " : " give ") + str(lc.scale()));
  return lc;
}

// /optimizer's AdamW settings and /state's schedule and batch: each inside the range of the key
// it records, the LR a resume starts with inside [0, optim.lr] (warm-up rises to it, decay
// falls from it), and the samples consumed the steps times the batch. Sets info's written
// layout from the checked attributes.
void check_run_attrs(hid_t file, const std::string& path, int step, CheckpointInfo& info) {
  H5Handle optimizer = open_group(file, path, "/optimizer"), state = open_group(file, path, "/state");
  const AttributeCheck opt(optimizer, path, "/optimizer"), st(state, path, "/state");
  opt.real("beta1", half_open(0, 1), "optim.beta1");
  opt.real("beta2", half_open(0, 1), "optim.beta2");
  opt.real("eps", above(0), "optim.eps");
  opt.real("weight_decay", at_least(0), "optim.weight_decay");
  const double lr = st.real("lr", above(0), "optim.lr");
  // The LR is computed in float: warm-up's lr * (step + 1) / warmup may round one ulp above lr.
  st.real("lr_next", closed(0, lr * (1 + 1e-6)), "the schedule's LR, which never exceeds optim.lr");
  st.real("min_lr_ratio", closed(0, 1), "optim.min_lr_ratio");
  st.integer("warmup_steps", at_least(0), "optim.warmup_steps");
  st.one_of("decay", {"cosine", "linear", "constant"}, "optim.decay");
  const int64_t batch = st.integer("batch_size", at_least(1), "train.batch_size");
  st.integer("seq_len", at_least(1), "train.seq_len");
  st.integer("total_steps", at_least(1), "train.steps");
  info.written_tp = static_cast<int>(st.integer("written_tp", closed(1, std::numeric_limits<int>::max()), "parallel.tp"));
  info.written_dp = static_cast<int>(st.integer("written_dp", closed(1, std::numeric_limits<int>::max()), "parallel.dp"));
  const int64_t samples = h5_read_attr<int64_t>(state, "samples_consumed", path, "/state");
  if (samples != int64_t(step) * batch)
    st.refuse("samples_consumed", std::to_string(samples) + ", but step " + std::to_string(step) + " x batch_size " +
                                      std::to_string(batch) + " = " + std::to_string(int64_t(step) * batch));
}

// --- compatibility -----------------------------------------------------------------------

// "name A in the checkpoint, B in this run" for each field that differs.
class Differences {
 public:
  explicit Differences(std::string noun = "checkpoint") : noun_(std::move(noun)) {}
  template <typename T>
  void check(const std::string& name, const T& in_file, const T& in_run) {
    if (!(in_file == in_run))
      items_.push_back(name + " " + str(in_file) + " in the " + noun_ + ", " + str(in_run) + " in this run");
  }
  bool empty() const { return items_.empty(); }
  const std::vector<std::string>& items() const { return items_; }
  std::string joined() const {
    std::string s;
    for (const auto& i : items_) s += (s.empty() ? "" : ", ") + i;
    return s;
  }

 private:
  std::string noun_;
  std::vector<std::string> items_;
};

// The two kinds of sealed file an adapter is read from: a checkpoint keeps the base
// model's attributes on /state, an adapter.h5 on /adapter.
struct AdapterSource {
  const char* noun;        // for messages: "checkpoint", "adapter"
  const char* base_group;  // where the model shape and base fingerprint are
};
constexpr AdapterSource kCheckpoint{"checkpoint", "/state"}, kAdapterFile{"adapter", "/adapter"};

AdapterSource adapter_source(hid_t file) {
  return H5Lexists(file, "state", H5P_DEFAULT) > 0 ? kCheckpoint : kAdapterFile;
}

// What must match for the adapter to mean anything in this run; every problem found goes
// into one message, each part saying what differs. Throws CheckpointError(Mismatch).
void check_compatible(hid_t file, const std::string& path, const ModelConfig& model, const LoraConfig& lora,
                      const BaseFingerprint& fp, const AdapterSource& src, bool check_scale) {
  // A LoRA checkpoint holds /adapter, a full fine-tuning one /model: neither continues the other.
  const bool full = !lora.enabled, has_model = H5Lexists(file, "model", H5P_DEFAULT) > 0;
  if (full != has_model)
    throw CheckpointError(CheckpointError::Mismatch,
                          path + ": " + src.noun + " of a " + (has_model ? "full fine-tuning" : "LoRA") +
                              " run (/" + (has_model ? "model" : "adapter") + "), but this run has lora.enabled: " +
                              (full ? "false" : "true"));
  H5Handle base = open_group(file, path, src.base_group);
  std::vector<std::string> problems;

  Differences shape(src.noun);
  for (const auto& f : ckpt::kModelShape)
    shape.check(f.name, h5_read_attr<int>(base, f.name, path, src.base_group), model.*f.field);
  // Files from before the Llama family have no arch attributes: they hold GPT models.
  const bool has_arch = H5Aexists(base, "arch") > 0;
  shape.check("arch", has_arch ? h5_read_attr<std::string>(base, "arch", path, src.base_group) : std::string("gpt"),
              model.arch);
  if (shape.empty()) {
    const ArchSpec run = arch_spec(model);
    for (const auto& f : ckpt::kArchShape)
      shape.check(f.name, has_arch ? h5_read_attr<int>(base, f.name, path, src.base_group) : run.*f.field, run.*f.field);
  }
  if (!shape.empty()) problems.push_back("model shape differs: " + shape.joined());

  // A seeded base's fingerprint hashes the shape too, so it only adds news when the shapes agree.
  const uint64_t file_fp = h5_read_attr<uint64_t>(base, "base_fingerprint", path, src.base_group);
  if (shape.empty() && file_fp != fp.hash)
    problems.push_back("base model fingerprint differs: " + ckpt::hex64(file_fp) + " (" +
                       h5_read_attr<std::string>(base, "base_description", path, src.base_group) + ") in the " +
                       src.noun + ", " + ckpt::hex64(fp.hash) + " (" + fp.description + ") in this run");

  if (!full) {  // the LoRA settings the factors were trained with
    H5Handle adapter = open_group(file, path, "/adapter");
    Differences r(src.noun), targets(src.noun);
    r.check("r", h5_read_attr<int>(adapter, "r", path, "/adapter"), lora.r);
    if (!r.empty()) problems.push_back("LoRA rank r differs: " + r.joined());
    targets.check("targets", h5_read_attr<std::string>(adapter, "targets", path, "/adapter"),
                  lora.target_list());
    if (!targets.empty()) problems.push_back("LoRA targets differ: " + targets.joined());

    // A merge folds s·B·A in with the run's scale: it must be the one the adapter was trained with.
    if (check_scale) {
      const double scale = h5_read_attr<double>(adapter, "scale", path, "/adapter");
      if (!(std::abs(scale - lora.scale()) <= 1e-6 * std::abs(scale)))
        problems.push_back("LoRA scale (alpha/r) differs: " + str(scale) + " in the " + src.noun + ", " +
                           str(lora.scale()) + " in this run: set lora.alpha, r and rslora as in training");
    }
  }

  if (problems.empty()) return;
  std::string msg = path + ": " + src.noun + " does not fit this run: ";
  for (size_t i = 0; i < problems.size(); ++i) msg += (i ? "; " : "") + problems[i];
  throw CheckpointError(CheckpointError::Mismatch, msg);
}

// Settings a resume may change (a new LR, more steps...), each a note for the log. The
// data order continues from step * batch_size, so a new batch_size moves the data cursor.
std::vector<std::string> changed_settings(hid_t file, const std::string& path, const CheckpointRun& run) {
  H5Handle state = open_group(file, path, "/state");
  auto f64 = [&](hid_t obj, const char* name, const char* where) { return h5_read_attr<double>(obj, name, path, where); };
  auto i64 = [&](hid_t obj, const char* name, const char* where) { return h5_read_attr<int64_t>(obj, name, path, where); };
  Differences d;
  if (run.lora.enabled) {
    H5Handle adapter = open_group(file, path, "/adapter");
    d.check("lora.alpha", f64(adapter, "alpha", "/adapter"), double(run.lora.alpha));
    d.check("lora.rslora", i64(adapter, "rslora", "/adapter"), int64_t(run.lora.rslora));
    d.check("lora.dropout", f64(adapter, "dropout", "/adapter"), double(run.lora.dropout));
  }
  d.check("train.seed", h5_read_attr<uint64_t>(state, "seed", path, "/state"), run.train.seed);
  d.check("train.batch_size", i64(state, "batch_size", "/state"), int64_t(run.train.batch_size));
  d.check("train.steps", i64(state, "total_steps", "/state"), int64_t(run.train.steps));
  d.check("optim.lr", f64(state, "lr", "/state"), double(run.optim.lr));
  d.check("optim.warmup_steps", i64(state, "warmup_steps", "/state"), int64_t(run.optim.warmup_steps));
  d.check("optim.decay", h5_read_attr<std::string>(state, "decay", path, "/state"), run.optim.decay);
  d.check("optim.min_lr_ratio", f64(state, "min_lr_ratio", "/state"), double(run.optim.min_lr_ratio));
  // Allowed (the adapter is fp32 either way) but the base it continues on is rounded
  // differently, so the continuation is no longer bit-identical: say so.
  d.check("model.dtype", h5_read_attr<std::string>(state, "base_dtype", path, "/state"), run.model.dtype);
  return d.items();
}

// --- tensors -----------------------------------------------------------------------------

// Reads every LoRA tensor of `layout` from `group_path` of the open file, this rank's slice
// of each, after checking the dataset's class and full shape against the layout (before a
// byte is read), and checks every value read is finite. Throws CheckpointError.
void read_tensor_group(hid_t file, const std::string& path, const char* group_path, const ParamLayout& layout,
                       int tp_rank, float* buffer, bool non_negative = false) {
  H5Handle group = as_checkpoint_error(CheckpointError::Mismatch, [&] { return open_group(file, path, group_path); });
  for (const TensorSpec& spec : layout.tensors) {
    const std::string name = std::string(group_path) + "/" + spec.name;
    const auto mismatch = [&](const std::string& why) { return CheckpointError(CheckpointError::Mismatch, path + ": " + why); };
    if (H5Lexists(group, spec.name.c_str(), H5P_DEFAULT) <= 0) throw mismatch("no dataset " + name + ", which this run needs");
    H5Handle ds(H5Dopen2(group, spec.name.c_str(), H5P_DEFAULT), H5Dclose);
    if (!ds.valid()) throw CheckpointError(CheckpointError::Invalid, path + ": cannot open dataset " + name);
    H5Handle type(H5Dget_type(ds), H5Tclose);
    if (!type.valid() || H5Tget_class(type) != H5T_FLOAT || H5Tget_size(type) != sizeof(float))
      throw CheckpointError(CheckpointError::Invalid, path + ": dataset " + name + " is not float32");
    const std::vector<hsize_t> shape = h5_shape(ds);
    if (shape != std::vector<hsize_t>{hsize_t(spec.rows), hsize_t(spec.cols)}) {
      std::string got;
      for (hsize_t d : shape) got += (got.empty() ? "" : ", ") + std::to_string(d);
      throw mismatch("dataset " + name + " has shape [" + got + "], this run needs [" + std::to_string(spec.rows) +
                     ", " + std::to_string(spec.cols) + "]");
    }
    float* slice = buffer + spec.offset;
    as_checkpoint_error(CheckpointError::Invalid, [&] {
      h5_read_rank_slice(ds, path, name, spec, tp_rank, slice);
      check_finite(slice, spec.local_size(), path, name);
      if (non_negative) {
        const float* negative = std::find_if(slice, slice + spec.local_size(), [](float x) { return x < 0; });
        if (negative != slice + spec.local_size())
          throw CheckpointError(CheckpointError::Invalid,
                                path + ": tensor '" + name + "' holds a negative value (" + str(*negative) +
                                    "), which AdamW's second moments never are");
      }
    });
  }
}

// Every tensor of every group in its full shape, read once on the verifying rank so that a
// NaN anywhere is refused there, before any rank has loaded anything.
void check_all_tensors(hid_t file, const std::string& path, const CheckpointRun& run) {
  const bool full_ft = !run.lora.enabled;
  const ParamLayout whole = full_ft ? base_layout(run.model, 1) : lora_layout(run.model, run.lora, 1);
  std::vector<float> scratch(whole.total);
  for (const auto& g : ckpt::tensor_groups(full_ft)) read_tensor_group(file, path, g.path, whole, 0, scratch.data(), g.non_negative);
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

CheckpointInfo verify_checkpoint(const std::string& path, const CheckpointRun& run, const BaseFingerprint& fp) {
  H5Handle file = open_verified(path);
  // The seal verified: from here on a missing or unreadable part means the file was
  // written wrong, not damaged, and an older file of the folder is no better.
  return as_checkpoint_error(CheckpointError::Invalid, [&] {
    check_compatible(file, path, run.model, run.lora, fp, kCheckpoint, /*check_scale=*/false);
    CheckpointInfo info;
    info.path = path;
    info.counters = read_counters(file, path, run.train.steps, "train.steps of this run");
    if (run.lora.enabled) read_lora_attrs(file, path);
    check_run_attrs(file, path, info.counters.step, info);
    check_all_tensors(file, path, run);
    info.notes = changed_settings(file, path, run);
    return info;
  });
}

std::optional<CheckpointInfo> select_checkpoint(const CheckpointRun& run, const BaseFingerprint& fp,
                                                std::ostream& log) {
  const std::string& mode = run.resume;
  if (mode == "none") return std::nullopt;
  if (mode != "auto") return verify_checkpoint(mode, run, fp);

  const fs::path dir = checkpoint_dir(run.output_dir);
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
      return verify_checkpoint(path, run, fp);
    } catch (const CheckpointError& e) {
      if (e.kind != CheckpointError::Corrupt) throw;  // sound files of this folder's run: older ones are no better
      log << "lora_dist: warning: skipping checkpoint " << e.what() << "; trying the previous one" << std::endl;
    }
  }
  log << "lora_dist: resume: auto found " << (by_step.empty() ? "no checkpoint" : "no usable checkpoint") << " in "
      << dir.string() << "; starting from step 0" << std::endl;
  return std::nullopt;
}


TrainCounters read_checkpoint(const std::string& path, const LoraSlices& s, bool full_finetuning) {
  h5_quiet();
  // Rank 0 verified the seal (verify_checkpoint); re-hashing the file on every rank would
  // only guard against it changing in between, which nothing does.
  H5Handle file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, h5_fapl_unlocked()), H5Fclose);
  if (!file.valid()) throw CheckpointError(CheckpointError::Corrupt, path + ": cannot open checkpoint");
  for (const auto& g : ckpt::tensor_groups(full_finetuning))
    read_tensor_group(file, path, g.path, s.layout, s.tp_rank, s.*g.buffer, g.non_negative);
  return read_counters(file, path, std::numeric_limits<int>::max(), "INT_MAX");
}

void read_adapter(const std::string& path, const ModelConfig& model, const LoraConfig& lora, const BaseFingerprint& fp,
                  const LoraLayout& layout, int tp_rank, float* params) {
  H5Handle file = open_sealed(path);
  as_checkpoint_error(CheckpointError::Invalid, [&] {
    if (H5Lexists(file, "adapter", H5P_DEFAULT) <= 0)
      throw CheckpointError(CheckpointError::Mismatch, path + ": no /adapter group: not an adapter or checkpoint file");
    read_lora_attrs(file, path);  // values no run writes first: a NaN scale is not "another scale"
    check_compatible(file, path, model, lora, fp, adapter_source(file), /*check_scale=*/true);
    read_tensor_group(file, path, "/adapter", layout, tp_rank, params);
  });
}

LoraConfig read_adapter_lora_config(const std::string& path) {
  H5Handle file = open_sealed(path);
  return as_checkpoint_error(CheckpointError::Invalid, [&] {
    if (H5Lexists(file, "adapter", H5P_DEFAULT) <= 0)
      throw CheckpointError(CheckpointError::Mismatch, path + ": no /adapter group: not an adapter or checkpoint file");
    return read_lora_attrs(file, path);
  });
}

std::optional<CheckpointInfo> resume_checkpoint(Communicator& comm, const CheckpointRun& run,
                                                const BaseFingerprint& fp, const LoraSlices& s) {
  Decision d;
  std::string text;  // the path to load, or why rank 0 refused
  std::optional<CheckpointInfo> info;
  if (comm.rank(Group::World) == 0) {
    try {
      info = select_checkpoint(run, fp, std::cerr);
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
  info->counters = read_checkpoint(text, s, !run.lora.enabled);
  return info;
}

}  // namespace lora
