// Writing checkpoints: gather, write under a temporary name, make durable, rename.
// Reading and verifying them is io/checkpoint_load.cpp.
#include "io/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <regex>

#include "io/checkpoint_hash.h"
#include "io/checkpoint_schema.h"
#include "io/hdf5_util.h"
#include "model/tensor_shards.h"
#include "trainer/lr_schedule.h"

namespace lora {

namespace fs = std::filesystem;

// --- the parts shared with the loader (io/checkpoint_schema.h) ------------------------------

namespace ckpt {

std::string hex64(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%016llx", static_cast<unsigned long long>(v));
  return buf;
}

namespace {

// Names of a group's datasets, and of an object's attributes, in name order.
// H5Gget_info + H5Lget_name_by_idx and H5Aiterate2 have the same signature in HDF5 1.10
// and 1.12+, unlike H5Literate and H5Oget_info.
std::vector<std::string> dataset_names(hid_t group, const std::string& file, const std::string& where) {
  H5G_info_t info{};
  h5_check(H5Gget_info(group, &info), file, where + ": cannot list the group");
  std::vector<std::string> names;
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    const ssize_t n = H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
    std::string name(static_cast<size_t>(h5_check(n, file, where + ": cannot list the group")), '\0');
    H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(), name.size() + 1, H5P_DEFAULT);
    H5Handle obj(h5_check(H5Oopen(group, name.c_str(), H5P_DEFAULT), file, where + "/" + name + ": cannot open"),
                 H5Oclose);
    if (H5Iget_type(obj) == H5I_DATASET) names.push_back(name);
  }
  return names;
}

std::vector<std::string> attribute_names(hid_t obj, const std::string& file, const std::string& where) {
  std::vector<std::string> names;
  hsize_t idx = 0;
  auto collect = [](hid_t, const char* name, const H5A_info_t*, void* out) -> herr_t {
    static_cast<std::vector<std::string>*>(out)->push_back(name);
    return 0;
  };
  h5_check(H5Aiterate2(obj, H5_INDEX_NAME, H5_ITER_INC, &idx, collect, &names), file, where + ": cannot list attributes");
  return names;
}

void hash_attribute(Hash64& h, hid_t obj, const std::string& name, const std::string& file, const std::string& where) {
  const std::string what = where + ": cannot read attribute '" + name + "'";
  H5Handle attr(h5_check(H5Aopen(obj, name.c_str(), H5P_DEFAULT), file, what), H5Aclose);
  H5Handle type(h5_check(H5Aget_type(attr), file, what), H5Tclose);
  H5Handle space(h5_check(H5Aget_space(attr), file, what), H5Sclose);
  const hssize_t points = H5Sget_simple_extent_npoints(space);
  if (points < 0 || H5Tis_variable_str(type) > 0) throw std::runtime_error(file + ": " + what);
  std::vector<unsigned char> bytes(H5Tget_size(type) * static_cast<size_t>(points));
  h5_check(H5Aread(attr, type, bytes.data()), file, what);
  h.add(name).add(static_cast<uint64_t>(bytes.size())).update(bytes.data(), bytes.size());
}

void hash_dataset(Hash64& h, hid_t group, const std::string& name, const std::string& file, const std::string& where) {
  const std::string what = where + "/" + name;
  H5Handle ds(h5_check(H5Dopen2(group, name.c_str(), H5P_DEFAULT), file, "cannot open dataset " + what), H5Dclose);
  const std::vector<hsize_t> shape = h5_shape(ds);
  hsize_t n = 1;
  for (hsize_t d : shape) n *= d;
  std::vector<float> values(static_cast<size_t>(n));
  if (n > 0)
    h5_check(H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()), file,
             "cannot read dataset " + what);
  h.add(name).add(static_cast<uint64_t>(shape.size()));
  for (hsize_t d : shape) h.add(static_cast<uint64_t>(d));
  h.update(values.data(), values.size() * sizeof(float));
}

}  // namespace

uint64_t file_checksum(hid_t file, const std::string& path) {
  Hash64 h;
  for (const char* g : kGroups) {
    H5Handle group(h5_check(H5Gopen2(file, g, H5P_DEFAULT), path, std::string("no group ") + g), H5Gclose);
    h.add(std::string(g));
    for (const std::string& a : attribute_names(group, path, g))
      if (a != "checksum") hash_attribute(h, group, a, path, g);
    for (const std::string& d : dataset_names(group, path, g)) hash_dataset(h, group, d, path, g);
  }
  return h.digest();
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
  // A seeded base is a pure function of these (model/gpt.cpp init_base_from_seed).
  Hash64 h;
  h.add(m.init).add(m.init_seed).add(m.init_std);
  for (const auto& f : ckpt::kModelShape) h.add(m.*f.field);
  fp.hash = h.digest();
  fp.description = "init: seed, init_seed " + std::to_string(m.init_seed) + ", init_std " + format_float(m.init_std);
  return fp;
}

// --- the atomic writer (world rank 0 only) --------------------------------------------------

namespace {

void fsync_path(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags);
  if (fd < 0) throw std::runtime_error(path + ": cannot open to fsync: " + std::strerror(errno));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) throw std::runtime_error(path + ": fsync failed: " + std::strerror(err));
}

// An HDF5 file that appears under its final name only once complete and on disk. Until
// commit() it is `path`.tmp; a writer destroyed before commit() (an exception) removes it.
class AtomicH5File {
 public:
  explicit AtomicH5File(std::string path) : path_(std::move(path)), tmp_(path_ + ".tmp") {
    h5_quiet();
    const fs::path parent = fs::path(path_).parent_path();
    if (!parent.empty()) fs::create_directories(parent);
    file_ = H5Handle(h5_check(H5Fcreate(tmp_.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, h5_fapl_unlocked()), tmp_,
                              "cannot create"),
                     H5Fclose);
  }
  ~AtomicH5File() {
    if (committed_) return;
    groups_.clear();
    file_.reset();
    std::error_code ec;
    fs::remove(tmp_, ec);
  }

  const std::string& tmp_path() const { return tmp_; }
  hid_t file() const { return file_; }

  // Creates group `name` on first use (parents must come first), then returns it.
  hid_t group(const std::string& name) {
    auto it = groups_.find(name);
    if (it != groups_.end()) return it->second;
    const hid_t g = H5Gcreate2(file_, name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    return groups_.emplace(name, H5Handle(h5_check(g, tmp_, "cannot create group " + name), H5Gclose)).first->second;
  }

  void write_tensor(const std::string& group_name, const TensorSpec& s, const std::vector<float>& full) {
    h5_write_matrix(group(group_name), s.name, s.rows, s.cols, full.data(), tmp_, group_name + "/" + s.name);
  }

  // Flush (which is where a full disk shows), close, fsync, rename, fsync the folder. The
  // fsync comes after H5Fclose rather than between flush and close so that it also covers
  // whatever close writes; fsync of any descriptor flushes every dirty page of the file.
  void commit() {
    h5_check(H5Fflush(file_, H5F_SCOPE_GLOBAL), tmp_, "flush failed (disk full?)");
    groups_.clear();
    if (H5Fclose(file_.get()) < 0) throw std::runtime_error(tmp_ + ": close failed");
    file_ = H5Handle();
    fsync_path(tmp_, O_WRONLY);
    if (std::rename(tmp_.c_str(), path_.c_str()) != 0)
      throw std::runtime_error(tmp_ + ": cannot rename to " + path_ + ": " + std::strerror(errno));
    committed_ = true;
    const fs::path parent = fs::path(path_).parent_path();
    fsync_path(parent.empty() ? "." : parent.string(), O_RDONLY | O_DIRECTORY);  // makes the rename durable
  }

 private:
  std::string path_, tmp_;
  H5Handle file_;
  std::map<std::string, H5Handle> groups_;
  bool committed_ = false;
};

// Every tensor of `buffer` in its full shape into `group` of `out` (world rank 0; null on
// the others). Collective over TP: the TP group of DP rank 0 gathers the sharded factors;
// the other DP replicas hold the same values and skip.
void gather_group(Communicator& comm, const LoraSlices& s, const float* buffer, AtomicH5File* out,
                  const std::string& group) {
  if (comm.rank(Group::DP) != 0) return;
  for (const TensorSpec& spec : s.layout.tensors) {
    const std::vector<float> full = gather_full_tensor(comm, spec, buffer + spec.offset);
    if (out) out->write_tensor(group, spec, full);
  }
}

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
  h5_write_attr(obj, "base_init", m.init);
  h5_write_attr(obj, "base_fingerprint", fp.hash);
  h5_write_attr(obj, "base_description", fp.description);
}

void write_optimizer_attrs(hid_t optimizer, const OptimConfig& o, TrainCounters c) {
  h5_write_attr(optimizer, "adam_step", c.adam_step);
  h5_write_attr(optimizer, "beta1", o.beta1);
  h5_write_attr(optimizer, "beta2", o.beta2);
  h5_write_attr(optimizer, "eps", o.eps);
  h5_write_attr(optimizer, "weight_decay", o.weight_decay);
}

void write_state_attrs(hid_t state, const RunConfig& cfg, const BaseFingerprint& fp, TrainCounters c,
                       const Communicator& comm) {
  const TrainConfig& t = cfg.train;
  const OptimConfig& o = cfg.optim;
  h5_write_attr(state, "format", ckpt::kFormat);
  h5_write_attr(state, "step", c.step);
  // The data cursor: step s reads samples [s*batch_size, (s+1)*batch_size) (DESIGN §5).
  h5_write_attr(state, "samples_consumed", static_cast<int64_t>(c.step) * t.batch_size);
  h5_write_attr(state, "batch_size", t.batch_size);
  h5_write_attr(state, "seq_len", t.seq_len);
  h5_write_attr(state, "total_steps", t.steps);
  h5_write_attr(state, "seed", t.seed);
  h5_write_attr(state, "init_seed", cfg.model.init_seed);
  h5_write_attr(state, "rng",
                "Philox4x32-10, counter-based (model/rng.h): LoRA init, dropout masks and data order are pure "
                "functions of (seed, step, ...), so seed and step are the whole RNG state");
  h5_write_attr(state, "lr", o.lr);
  h5_write_attr(state, "warmup_steps", o.warmup_steps);
  h5_write_attr(state, "decay", o.decay);
  h5_write_attr(state, "min_lr_ratio", o.min_lr_ratio);
  h5_write_attr(state, "lr_next", learning_rate(o, c.step, t.steps));  // the LR of the step a resume runs first
  write_base_attrs(state, cfg.model, fp);
  h5_write_attr(state, "written_tp", comm.size(Group::TP));
  h5_write_attr(state, "written_dp", comm.size(Group::DP));
}

}  // namespace

void save_checkpoint(Communicator& comm, const RunConfig& cfg, const BaseFingerprint& fp, const LoraSlices& s,
                     TrainCounters c, const std::string& path) {
  std::optional<AtomicH5File> out;
  if (comm.rank(Group::World) == 0) {
    out.emplace(path);
    for (const char* g : ckpt::kGroups) out->group(g);
  }
  for (const auto& g : ckpt::kTensorGroups) gather_group(comm, s, s.*g.buffer, out ? &*out : nullptr, g.path);
  if (out) {
    write_lora_attrs(out->group("/adapter"), cfg.lora);
    write_optimizer_attrs(out->group("/optimizer"), cfg.optim, c);
    const hid_t state = out->group("/state");
    write_state_attrs(state, cfg, fp, c, comm);
    h5_write_attr(state, "checksum", ckpt::file_checksum(out->file(), out->tmp_path()));
    out->commit();
  }
  comm.barrier(Group::World);  // no rank goes on (and perhaps exits) before the file is in place
}

uint64_t save_adapter(Communicator& comm, const RunConfig& cfg, const BaseFingerprint& fp, const LoraSlices& s,
                      const std::string& path) {
  std::optional<AtomicH5File> out;
  if (comm.rank(Group::World) == 0) out.emplace(path);
  gather_group(comm, s, s.params, out ? &*out : nullptr, "/adapter");
  uint64_t bytes = 0;
  if (out) {
    const hid_t adapter = out->group("/adapter");
    write_lora_attrs(adapter, cfg.lora);
    write_base_attrs(adapter, cfg.model, fp);
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
