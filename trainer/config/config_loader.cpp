// run.yaml -> RunConfig. The keys are one table (spec() below): each key names a
// reader built by a small per-type helper that parses the scalar, range-checks it
// and stores it; the loader walks the document in order and fails at the first
// problem. Cross-key and file checks follow once every key is read.
#include "trainer/config/config_loader.h"

#include "model/arch.h"
#include "model/param_layout.h"

#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <vector>

#include "io/hf_config.h"
#include "model/arch.h"
#include "model/param_layout.h"
#include "trainer/devices/device_spec.h"

namespace lora {
namespace {

namespace fs = std::filesystem;
constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr uintmax_t kMaxConfigBytes = 1 << 20;  // a run.yaml is a few KiB

std::string fmt(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

std::string join(const std::vector<std::string>& v, const char* sep = ", ") {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += (i ? sep : "") + v[i];
  return out;
}

// A node as the user wrote it, for the "(got ...)" part of a message.
std::string show(const YAML::Node& n) {
  if (!n.IsDefined() || n.IsNull()) return "nothing";
  if (n.IsScalar()) return n.Tag() == "!" ? "\"" + n.Scalar() + "\"" : n.Scalar();
  YAML::Emitter e;
  e << YAML::Flow << n;
  std::string s = e.c_str();
  return s.size() > 80 ? s.substr(0, 77) + "..." : s;
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] != b[j - 1])});
      diag = up;
    }
  }
  return row[b.size()];
}

// The candidate closest to `typed`, when it is within 2 edits (and closer than
// the typed word is long, so a one-letter typo does not match every short key).
std::string closest(const std::string& typed, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_d = 3;
  for (const auto& c : candidates) {
    size_t d = edit_distance(typed, c);
    if (d < best_d && d < typed.size()) best = c, best_d = d;
  }
  return best;
}

struct Ctx {
  std::string file;
  fs::path dir;                             // the YAML file's directory, absolute
  std::map<std::string, int> lines;         // "model" / "model.n_head" -> 1-based line
  std::map<std::string, std::string> raw;   // path keys as written, before resolving

  std::map<std::string, std::string> overrides;  // "parallel.tp" (and a section they added) -> "parallel.tp=8"

  [[noreturn]] void fail(int line, const std::string& key, const std::string& what,
                         const std::string& got) const {
    throw ConfigError(where(line, key) + ": " + key + ": " + what + " (got " + got + ")");
  }
  // "file:line", or for a value given by --set (line 0) the --set that gave it.
  std::string where(int line, const std::string& key) const {
    if (line > 0 || overrides.empty()) return file + ":" + std::to_string(std::max(line, 1));
    if (auto it = overrides.find(key); it != overrides.end()) return file + ": --set " + it->second;
    std::string all;
    for (const auto& [k, o] : overrides) all += (all.empty() ? "" : ", ") + ("--set " + o);
    return file + " with " + all;
  }
  // The line of the first of `keys` present in the file, else of its section, else 1.
  int line_of(std::initializer_list<std::string> keys) const {
    for (const auto& k : keys)
      if (auto it = lines.find(k); it != lines.end()) return it->second;
    for (const auto& k : keys)
      if (auto it = lines.find(k.substr(0, k.find('.'))); it != lines.end()) return it->second;
    return 1;
  }
  std::string resolve(const std::string& p) const {
    fs::path path(p);
    return (path.is_absolute() ? path : dir / path).lexically_normal().string();
  }
};

// One key's value with where it came from.
struct Field {
  Ctx& ctx;
  std::string key;  // "section.key"
  int line;
  YAML::Node value;
  [[noreturn]] void fail(const std::string& what) const { ctx.fail(line, key, what, show(value)); }
};

using Reader = std::function<void(const Field&)>;

// --- scalar parsing ----------------------------------------------------------------------

// The unquoted scalar text, or a type error naming what was expected.
std::string plain_scalar(const Field& f, const std::string& expected) {
  const YAML::Node& v = f.value;
  if (v.IsNull()) f.fail("expected " + expected + ", the key has no value");
  if (v.IsSequence()) f.fail("expected " + expected + ", not a list");
  if (v.IsMap()) f.fail("expected " + expected + ", not a mapping");
  if (v.Tag() == "!") f.fail("expected " + expected + ", not a quoted string");
  return v.Scalar();
}

bool is_integer_text(const std::string& s) {
  size_t i = (!s.empty() && (s[0] == '+' || s[0] == '-')) ? 1 : 0;
  return i < s.size() && std::all_of(s.begin() + i, s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool parse_double(const std::string& s, double& out) {
  if (s.empty()) return false;
  char* end = nullptr;
  errno = 0;
  out = std::strtod(s.c_str(), &end);
  return end == s.c_str() + s.size();
}

long long parse_int(const Field& f) {
  std::string s = plain_scalar(f, "an integer");
  double d;
  if (!is_integer_text(s))
    f.fail(parse_double(s, d) ? "expected an integer, not a float" : "expected an integer");
  errno = 0;
  long long v = std::strtoll(s.c_str(), nullptr, 10);
  if (errno == ERANGE || v < INT_MIN || v > INT_MAX) f.fail("out of range for a 32-bit integer");
  return v;
}

double parse_number(const Field& f) {
  std::string s = plain_scalar(f, "a number");
  double v;
  if (!parse_double(s, v)) f.fail("expected a number");
  if (!std::isfinite(v)) f.fail("must be a finite number");
  return v;
}

// --- ranges ------------------------------------------------------------------------------

struct Range {
  double lo = -kInf, hi = kInf;
  bool lo_open = false, hi_open = false;
  bool contains(double v) const {
    return (lo_open ? v > lo : v >= lo) && (hi_open ? v < hi : v <= hi);
  }
  std::string describe(bool integer) const {
    if (hi == kInf) return std::string("must be ") + (lo_open ? "> " : ">= ") + fmt(lo);
    if (integer && !lo_open && !hi_open) return "must be in " + fmt(lo) + ".." + fmt(hi);
    return "must be in " + std::string(lo_open ? "(" : "[") + fmt(lo) + ", " + fmt(hi) +
           (hi_open ? ")" : "]");
  }
};
Range at_least(double v) { return {v, kInf, false, false}; }
Range above(double v) { return {v, kInf, true, false}; }
Range half_open(double lo, double hi) { return {lo, hi, false, true}; }
Range closed(double lo, double hi) { return {lo, hi, false, false}; }

// --- one reader per type -----------------------------------------------------------------

template <class T>
Reader number(T& dst, Range range = {}) {
  return [&dst, range](const Field& f) {
    constexpr bool integer = std::is_integral_v<T>;
    double v = integer ? static_cast<double>(parse_int(f)) : parse_number(f);
    if (!range.contains(v)) f.fail(range.describe(integer));
    dst = static_cast<T>(v);
    if (!integer && !std::isfinite(dst)) f.fail("out of range for a 32-bit float");
    if (!range.contains(static_cast<double>(dst))) f.fail(range.describe(integer));  // underflow
  };
}

Reader seed(uint64_t& dst) {
  return [&dst](const Field& f) {
    std::string s = plain_scalar(f, "a non-negative integer");
    double d;
    if (!is_integer_text(s))
      f.fail(parse_double(s, d) ? "expected a non-negative integer, not a float"
                                : "expected a non-negative integer");
    if (s[0] == '-') f.fail("must be a non-negative integer (an unsigned 64-bit seed)");
    errno = 0;
    unsigned long long v = std::strtoull(s.c_str(), nullptr, 10);
    if (errno == ERANGE) f.fail("out of range for an unsigned 64-bit integer");
    dst = v;
  };
}

Reader boolean(bool& dst) {
  return [&dst](const Field& f) {
    YAML::Node n(plain_scalar(f, "true or false"));
    if (!YAML::convert<bool>::decode(n, dst)) f.fail("expected true or false");
  };
}

Reader text(std::string& dst) {  // quoted or not
  return [&dst](const Field& f) {
    if (!f.value.IsScalar()) plain_scalar(f, "a string");  // throws the type error
    dst = f.value.Scalar();
    if (dst.empty()) f.fail("must not be empty");
  };
}

Reader choice(std::string& dst, std::vector<std::string> choices) {
  return [&dst, choices](const Field& f) {
    std::string s = f.value.IsScalar() ? f.value.Scalar() : plain_scalar(f, "a string");
    if (std::find(choices.begin(), choices.end(), s) != choices.end()) return void(dst = s);
    std::string near = closest(s, choices);
    f.fail("must be one of " + join(choices) + (near.empty() ? "" : ", did you mean '" + near + "'?"));
  };
}

// A path, resolved against the YAML file's directory. Existence is checked later.
Reader path(std::string& dst, bool optional = false) {
  return [&dst, optional](const Field& f) {
    if (optional && (f.value.IsNull() || (f.value.IsScalar() && f.value.Scalar().empty())))
      return void(dst.clear());  // val: ~ / val: "" = none
    std::string s;
    text(s)(f);
    f.ctx.raw[f.key] = s;
    dst = f.ctx.resolve(s);
  };
}

Reader resume(std::string& dst) {
  return [&dst](const Field& f) {
    std::string s;
    text(s)(f);
    f.ctx.raw[f.key] = s;
    dst = (s == "none" || s == "auto") ? s : f.ctx.resolve(s);
  };
}

// LoRA targets by lora_dist's short names (GPT: q k v o fc1 fc2; Llama: q k v o gate up down)
// or PEFT's module names for Llama (q_proj ... down_proj), or a shortcut: all, attention, mlp.
// Which names the architecture has is checked once it is known (fit_lora_targets).
Reader targets(bool (&dst)[kNumTargets]) {
  return [&dst](const Field& f) {
    static const std::vector<std::string> names = {"q", "k", "v", "o", "fc1", "fc2", "gate", "up", "down"};
    static const std::vector<std::string> peft = {"q_proj", "k_proj", "v_proj", "o_proj", "", "", "gate_proj", "up_proj",
                                                  "down_proj"};
    const std::string valid = "q, k, v, o, fc1, fc2 (GPT), gate, up, down (Llama) or PEFT's q_proj ... down_proj";
    bool t[kNumTargets] = {};
    const std::string shortcut = f.value.IsScalar() ? f.value.Scalar() : "";
    if (shortcut == "all" || shortcut == "attention" || shortcut == "mlp") {
      for (int i = 0; i < kNumTargets; ++i) t[i] = shortcut == "all" || (shortcut == "attention") == (i <= kO);
      f.ctx.raw[f.key] = shortcut;  // the architecture's own targets are kept of these (fit_lora_targets)
    } else if (f.value.IsSequence()) {
      if (f.value.size() == 0) f.fail("needs at least one target among " + valid);
      for (const auto& el : f.value) {
        int line = el.Mark().line + 1;
        std::string s = el.IsScalar() ? el.Scalar() : "";
        auto it = std::find(names.begin(), names.end(), s);
        if (it == names.end() && !s.empty()) it = names.begin() + (std::find(peft.begin(), peft.end(), s) - peft.begin());
        if (it == names.end()) {
          std::vector<std::string> all = names;
          all.insert(all.end(), peft.begin(), peft.end());
          std::string near = closest(s, all);
          f.ctx.fail(line, f.key, "unknown target, valid targets are " + valid + (near.empty() ? "" : ", did you mean '" + near + "'?"),
                     show(el));
        }
        bool& slot = t[it - names.begin()];
        if (slot) f.ctx.fail(line, f.key, "duplicate target", show(el));
        slot = true;
      }
    } else {
      f.fail("expected a list of names among " + valid + ", or 'all', 'attention' or 'mlp'");
    }
    std::copy(t, t + kNumTargets, dst);
  };
}

// --- the key table -----------------------------------------------------------------------

struct KeySpec {
  std::string name;
  Reader read;
};
struct SectionSpec {
  std::string name;
  std::vector<KeySpec> keys;
};

std::vector<SectionSpec> spec(RunConfig& c, DeviceConfig& device) {
  auto& m = c.model;
  auto& l = c.lora;
  auto& o = c.optim;
  auto& t = c.train;
  return {
      {"model",
       {{"arch", choice(m.arch, {"gpt", "llama"})},
        {"n_layer", number(m.n_layer, at_least(1))},
        {"n_head", number(m.n_head, at_least(1))},
        {"d_model", number(m.d_model, at_least(1))},
        {"vocab_size", number(m.vocab_size, at_least(1))},
        {"context", number(m.context, at_least(1))},
        {"ln_eps", number(m.ln_eps, above(0))},
        {"n_kv_head", number(m.n_kv_head, at_least(1))},
        {"head_dim", number(m.head_dim, at_least(1))},
        {"ffn", number(m.ffn, at_least(1))},
        {"rope_theta", number(m.rope_theta, above(0))},
        {"rope_factor", number(m.rope_scaling.factor, at_least(0))},
        {"rope_low_freq_factor", number(m.rope_scaling.low_freq_factor, above(0))},
        {"rope_high_freq_factor", number(m.rope_scaling.high_freq_factor, above(0))},
        {"rope_original_context", number(m.rope_scaling.original_max_position_embeddings, above(0))},
        {"tie_embeddings", boolean(m.tie_embeddings)},
        {"qkv_bias", boolean(m.qkv_bias)},
        {"o_bias", boolean(m.o_bias)},
        {"mlp_bias", boolean(m.mlp_bias)},
        {"init", choice(m.init, {"seed", "file", "hf"})},
        {"init_seed", seed(m.init_seed)},
        {"init_std", number(m.init_std, above(0))},
        {"weights_file", path(m.weights_file, true)},
        {"path", path(m.path, true)},
        {"dtype", choice(m.dtype, {"fp32", "bf16", "nf4"})}}},
      {"lora",
       {{"enabled", boolean(l.enabled)},
        {"r", number(l.r, closed(1, 64))},
        {"alpha", number(l.alpha, above(0))},
        {"rslora", boolean(l.rslora)},
        {"dropout", number(l.dropout, half_open(0, 1))},
        {"targets", targets(l.targets)},
        {"init_from", path(l.init_from, true)}}},
      {"optim",
       {{"lr", number(o.lr, above(0))},
        {"weight_decay", number(o.weight_decay, at_least(0))},
        {"beta1", number(o.beta1, half_open(0, 1))},
        {"beta2", number(o.beta2, half_open(0, 1))},
        {"eps", number(o.eps, above(0))},
        {"grad_clip", number(o.grad_clip, at_least(0))},
        {"warmup_steps", number(o.warmup_steps, at_least(0))},
        {"decay", choice(o.decay, {"cosine", "linear", "constant"})},
        {"min_lr_ratio", number(o.min_lr_ratio, closed(0, 1))}}},
      {"data", {{"train", path(c.data.train)}, {"val", path(c.data.val, true)}}},
      {"train",
       {{"steps", number(t.steps, at_least(1))},
        {"batch_size", number(t.batch_size, at_least(1))},
        {"micro_batch", number(t.micro_batch, at_least(1))},
        {"seq_len", number(t.seq_len, at_least(1))},
        {"eval_every", number(t.eval_every, at_least(0))},
        {"eval_batches", number(t.eval_batches, at_least(1))},
        {"log_every", number(t.log_every, at_least(1))},
        {"seed", seed(t.seed)},
        {"threads", number(t.threads, at_least(0))},
        {"on_nonfinite", choice(t.on_nonfinite, {"stop", "skip"})},
        {"recompute", choice(t.recompute, {"none", "full"})}}},
      {"parallel",
       {{"tp", number(c.parallel.tp, at_least(1))},
        {"dp", number(c.parallel.dp, at_least(1))},
        {"check_every", number(c.parallel.check_every, at_least(0))},
        {"timeout_s", number(c.parallel.timeout_s, closed(1, 7 * 24 * 3600))}}},
      {"checkpoint",
       {{"every", number(c.checkpoint.every, at_least(0))},
        {"every_minutes", number(c.checkpoint.every_minutes, at_least(0))},
        {"keep_last", number(c.checkpoint.keep_last, at_least(1))},
        {"resume", resume(c.checkpoint.resume)}}},
      {"output", {{"dir", path(c.output.dir)}, {"metrics", text(c.output.metrics)}}},
      {"device",
       {{"backend", choice(device.backend, {"auto", "cpu", "cuda"})},
        {"comm", choice(device.comm, {"auto", "nccl", "mpi"})},
        {"preset", choice(device.preset, device_preset_names())},
        {"devices_per_node", number(device.devices_per_node, at_least(0))}}},
  };
}

// "did you mean" for an unknown name: a near key of this section, or the same name
// in another section.
std::string suggestion(const std::string& typed, const std::vector<std::string>& here,
                       const std::vector<SectionSpec>& all, const std::string& this_section) {
  std::string near = closest(typed, here);
  if (near.empty())
    for (const auto& s : all)
      for (const auto& k : s.keys)
        if (k.name == typed && s.name != this_section) near = s.name + "." + k.name;
  return near.empty() ? "" : ", did you mean '" + near + "'?";
}

// Pass 2a: model.init hf takes the shape from the folder's config.json (InputError when that
// file is bad); a shape key the YAML also sets must agree with it.
void adopt_hf_shape(RunConfig& c, const Ctx& ctx) {
  if (c.model.init != "hf") return;
  const int line = ctx.line_of({"model.path", "model.init"});
  if (c.model.path.empty()) ctx.fail(line, "model.path", "model.init is 'hf' but no model.path (an HF model folder) is given", "nothing");
  std::error_code ec;
  if (!fs::is_directory(c.model.path, ec))
    ctx.fail(line, "model.path", "not a folder: " + c.model.path, ctx.raw.count("model.path") ? ctx.raw.at("model.path") : c.model.path);
  // The folder's model_type picks the reader (none: GPT-2, whose older folders omit it).
  const std::string type = read_hf_model_type(c.model.path);
  const bool gpt2 = type.empty() || type == "gpt2";
  ModelConfig theirs = c.model;
  int sliding_window = 0;
  if (gpt2) {
    apply_hf_shape(read_hf_gpt2_config(c.model.path), theirs);
  } else {
    const HfLlamaShape shape = read_hf_llama_config(c.model.path);
    apply_hf_shape(shape, theirs);
    sliding_window = shape.sliding_window;
  }
  const std::string file = (fs::path(c.model.path) / "config.json").string();
  if (ctx.lines.count("model.arch") && c.model.arch != theirs.arch)
    ctx.fail(ctx.line_of({"model.arch"}), "model.arch",
             "disagrees with " + file + ", whose model_type " + (type.empty() ? "(none: GPT-2)" : type) + " is a " +
                 theirs.arch + " model (leave the key out: model.init hf takes it from config.json)",
             c.model.arch);
  for (const HfShapeKey& k : gpt2 ? std::vector<HfShapeKey>(std::begin(kHfShapeKeys), std::end(kHfShapeKeys))
                                  : std::vector<HfShapeKey>(std::begin(kHfLlamaShapeKeys), std::end(kHfLlamaShapeKeys))) {
    const std::string key = std::string("model.") + k.yaml_key;
    const std::string ours = model_shape_value(c.model, k.yaml_key), hf = model_shape_value(theirs, k.yaml_key);
    if (ctx.lines.count(key) && ours != hf)
      ctx.fail(ctx.line_of({key}), key,
               "disagrees with " + file + ", whose " + k.json_key + " is " + hf +
                   " (leave the key out: model.init hf takes the shape from config.json)",
               ours);
  }
  // Mistral attends within a sliding window; inside one, that is plain causal attention.
  if (sliding_window > 0 && c.train.seq_len > sliding_window)
    ctx.fail(ctx.line_of({"train.seq_len"}), "train.seq_len",
             "exceeds the sliding_window " + std::to_string(sliding_window) + " of " + file +
                 " (lora_dist attends over the whole sequence, which equals the window only up to its length)",
             std::to_string(c.train.seq_len));
  c.model = theirs;
}

// Pass 2b: the LoRA targets must be the architecture's own; a shortcut (all, attention, mlp)
// keeps those of its targets the architecture has.
void fit_lora_targets(RunConfig& c, const Ctx& ctx) {
  const ArchSpec a = arch_spec(c.model);
  const bool shortcut = ctx.raw.count("lora.targets") != 0;
  std::string theirs;
  for (const int t : a.lora_targets) theirs += (theirs.empty() ? "" : ", ") + std::string(lora_target_name(t));
  for (int t = 0; t < kNumTargets; ++t) {
    if (!c.lora.targets[t] || a.has_target(t)) continue;
    if (shortcut) c.lora.targets[t] = false;
    else
      ctx.fail(ctx.line_of({"lora.targets"}), "lora.targets",
               std::string("'") + lora_target_name(t) + "' is not a target of the " + a.family +
                   " architecture (model.arch), whose targets are " + theirs,
               c.lora.target_list());
  }
}

// Pass 2: keys that must agree with each other.
void check_consistency(const RunConfig& c, const Ctx& ctx) {
  const auto& m = c.model;
  const auto& t = c.train;
  const auto& p = c.parallel;
  if (c.data.train.empty())
    ctx.fail(ctx.line_of({"data"}), "data.train", "required key is missing", "nothing");
  // GPT derives these sizes from d_model and n_head; only the Llama family sets them.
  if (m.arch == "gpt")
    for (const char* key : {"model.n_kv_head", "model.head_dim", "model.ffn", "model.rope_theta", "model.rope_factor",
                            "model.rope_low_freq_factor", "model.rope_high_freq_factor", "model.rope_original_context",
                            "model.tie_embeddings", "model.qkv_bias", "model.o_bias", "model.mlp_bias"})
      if (ctx.lines.count(key))
        ctx.fail(ctx.line_of({key}), key,
                 "is a key of the llama architecture; model.arch is gpt (GPT-2: 4 * d_model MLP, d_model / n_head "
                 "per head, every bias, a tied head)",
                 "set");
  if (m.head_dim == 0 && m.d_model % m.n_head != 0)
    ctx.fail(ctx.line_of({"model.n_head", "model.d_model"}), "model.n_head",
             "model.d_model must be divisible by model.n_head, every head gets d_model / n_head "
             "channels" + std::string(m.arch == "llama" ? " (or set model.head_dim)" : ""),
             "d_model = " + std::to_string(m.d_model) + ", n_head = " + std::to_string(m.n_head));
  const ArchSpec a = arch_spec(m);
  if (m.arch == "llama") {
    if (a.n_head % a.n_kv_head != 0)
      ctx.fail(ctx.line_of({"model.n_kv_head"}), "model.n_kv_head",
               "must divide model.n_head = " + std::to_string(a.n_head) +
                   " (grouped-query attention: every KV head serves a whole group of query heads)",
               std::to_string(a.n_kv_head));
    if (a.head_dim % 2 != 0)
      ctx.fail(ctx.line_of({"model.head_dim", "model.d_model"}), "model.head_dim",
               "must be even: RoPE rotates pairs of channels", std::to_string(a.head_dim));
    if (m.rope_scaling.factor > 0 && !(m.rope_scaling.low_freq_factor < m.rope_scaling.high_freq_factor))
      ctx.fail(ctx.line_of({"model.rope_low_freq_factor", "model.rope_high_freq_factor"}), "model.rope_low_freq_factor",
               "must be below model.rope_high_freq_factor (Llama 3.1's scaling smooths between the two)",
               fmt(m.rope_scaling.low_freq_factor));
  }
  if (!c.lora.enabled && m.dtype != "fp32")
    ctx.fail(ctx.line_of({"model.dtype", "lora.enabled"}), "model.dtype",
             "full fine-tuning (lora.enabled: false) trains the base weights in fp32, bf16 and nf4 are for frozen ones",
             m.dtype);
  if (!c.lora.enabled && !c.lora.init_from.empty())
    ctx.fail(ctx.line_of({"lora.init_from"}), "lora.init_from",
             "a LoRA adapter to start from, but lora.enabled is false (full fine-tuning has no adapter)",
             c.lora.init_from);
  if (m.init == "file" && m.weights_file.empty())
    ctx.fail(ctx.line_of({"model.init"}), "model.weights_file",
             "model.init is 'file' but no model.weights_file is given", "nothing");
  if (t.seq_len > m.context)
    ctx.fail(ctx.line_of({"train.seq_len"}), "train.seq_len",
             "must not exceed model.context = " + std::to_string(m.context) +
                 (m.arch == "gpt" ? ", the size of the learned position table" : ", the positions the model was built for"),
             std::to_string(t.seq_len));
  const long long split = 1LL * p.dp * t.micro_batch;
  if (t.batch_size % split != 0)
    ctx.fail(ctx.line_of({"train.batch_size"}), "train.batch_size",
             "must be divisible by parallel.dp * train.micro_batch = " + std::to_string(p.dp) +
                 " * " + std::to_string(t.micro_batch) + " = " + std::to_string(split) +
                 ": the sequences of one step must split evenly over the dp ranks and, on each "
                 "rank, into whole micro-batches",
             std::to_string(t.batch_size));
  // Single dimensions are 32-bit (BLAS takes int sizes); products of them are 64-bit. These
  // are the dimensions the model forms by multiplying two keys.
  auto fits_int = [&](long double v, std::initializer_list<std::string> keys, const std::string& what) {
    if (v <= INT_MAX) return;
    ctx.fail(ctx.line_of(keys), *keys.begin(),
             what + " must fit in a 32-bit integer (a GEMM dimension) but is " + fmt(double(v)), fmt(double(v)));
  };
  if (m.arch == "gpt") fits_int(4.0L * m.d_model, {"model.d_model"}, "the MLP width 4 * model.d_model");
  fits_int(2.0L * a.ffn, {"model.ffn"}, "the fused gate|up width 2 * model.ffn");
  fits_int((1.0L * a.n_head + 2.0L * a.n_kv_head) * a.head_dim, {"model.head_dim", "model.n_head"},
           "the fused q|k|v width (n_head + 2 n_kv_head) * head_dim");
  fits_int(1.0L * t.micro_batch * t.seq_len, {"train.micro_batch", "train.seq_len"},
           "the tokens of a micro-batch, train.micro_batch * train.seq_len,");
  fits_int(1.0L * t.micro_batch * m.n_head, {"train.micro_batch", "model.n_head"},
           "the attention heads of a micro-batch, train.micro_batch * model.n_head,");
  fits_int(1.0L * m.vocab_size + p.tp, {"model.vocab_size"}, "model.vocab_size padded to a multiple of parallel.tp");
  fits_int(1.0L * t.eval_batches * t.batch_size, {"train.eval_batches", "train.batch_size"},
           "the sequences of one eval, train.eval_batches * train.batch_size,");
  const std::string largest = " (the largest tp for this model is " + std::to_string(largest_tp(a)) + ")";
  if (m.n_head % p.tp != 0)
    ctx.fail(ctx.line_of({"parallel.tp"}), "parallel.tp",
             "must divide model.n_head = " + std::to_string(m.n_head) +
                 " so that every tensor-parallel rank holds whole heads" + largest,
             std::to_string(p.tp));
  if (a.n_kv_head % p.tp != 0)
    ctx.fail(ctx.line_of({"parallel.tp"}), "parallel.tp",
             "must divide model.n_kv_head = " + std::to_string(a.n_kv_head) +
                 " so that every tensor-parallel rank holds whole groups of grouped-query attention (KV heads are "
                 "not replicated across ranks)" + largest,
             std::to_string(p.tp));
  if (a.ffn % p.tp != 0)
    ctx.fail(ctx.line_of({"parallel.tp"}), "parallel.tp",
             "must divide the MLP width " + std::string(m.arch == "gpt" ? "4 * model.d_model" : "model.ffn") + " = " +
                 std::to_string(a.ffn) + " so that every tensor-parallel rank holds an equal slice" + largest,
             std::to_string(p.tp));
  if (m.dtype == "nf4" && a.n_head % p.tp == 0 && a.n_kv_head % p.tp == 0 && a.ffn % p.tp == 0) {
    try {  // every rank's rows of every NF4 matrix must be whole 64-weight blocks
      (void)base_layout(m, p.tp);
    } catch (const std::invalid_argument& e) {
      ctx.fail(ctx.line_of({"model.dtype", "parallel.tp"}), "model.dtype", e.what(), m.dtype);
    }
  }
}

// Pass 3: files that must exist.
void check_files(const RunConfig& c, const Ctx& ctx) {
  auto need = [&](const std::string& key, const std::string& resolved, bool dir_ok) {
    std::error_code ec;
    auto st = fs::status(resolved, ec);
    if (fs::is_regular_file(st) || (dir_ok && fs::is_directory(st))) return;
    std::string what = fs::exists(st) ? "is not a regular file: " : "file not found: ";
    ctx.fail(ctx.line_of({key}), key, what + resolved, ctx.raw.count(key) ? ctx.raw.at(key) : resolved);
  };
  need("data.train", c.data.train, false);
  if (!c.data.val.empty()) need("data.val", c.data.val, false);
  if (c.model.init == "file") need("model.weights_file", c.model.weights_file, false);
  if (!c.lora.init_from.empty() && !fs::is_directory(c.lora.init_from))
    ctx.fail(ctx.line_of({"lora.init_from"}), "lora.init_from",
             "not a folder (a PEFT adapter: adapter_config.json + adapter_model.safetensors): " + c.lora.init_from,
             ctx.raw.count("lora.init_from") ? ctx.raw.at("lora.init_from") : c.lora.init_from);
  if (c.checkpoint.resume != "none" && c.checkpoint.resume != "auto")
    need("checkpoint.resume", c.checkpoint.resume, true);
}

// Walks the documents of `text` with yaml-cpp's event parser, which sees no nodes: a second
// document is an error (it would be silently ignored), and so is a parser that does not
// advance: yaml-cpp 0.7's LoadAll loops forever on a stray ',' before the first key (found by
// tests/fuzz/fuzz_config), re-reading the same document at the same offset.
class DocumentStarts : public YAML::EventHandler {
 public:
  YAML::Mark start;
  void OnDocumentStart(const YAML::Mark& m) override { start = m; }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};

void check_one_document(const std::string& text, const std::string& yaml_path) {
  std::istringstream in(text);
  YAML::Parser parser(in);
  DocumentStarts h;
  int docs = 0, last_pos = -1;
  while (parser.HandleNextDocument(h)) {
    const YAML::Mark m = h.start;
    if (m.pos <= last_pos) {
      const size_t pos = static_cast<size_t>(std::max(0, m.pos));
      throw ConfigError(yaml_path + ":" + std::to_string(m.line + 1) + ": yaml: syntax error: unexpected '" +
                        (pos < text.size() ? std::string(1, text[pos]) : std::string("end of file")) +
                        "' at column " + std::to_string(m.column + 1));
    }
    last_pos = m.pos;
    if (++docs == 2)
      throw ConfigError(yaml_path + ":" + std::to_string(m.line + 1) + ": yaml: a second document ('---'); a run "
                        "config is one document, and the second would be ignored");
  }
}

// The file's text as one YAML document. Read here rather than by YAML::LoadFile, which
// throws std::ios_base::failure on a folder and says only "bad file" on deep nesting.
YAML::Node parse_single_document(const std::string& yaml_path) {
  std::error_code ec;
  const auto st = fs::status(yaml_path, ec);
  if (ec || !fs::exists(st)) throw ConfigError(yaml_path + ": cannot read config file: no such file");
  if (fs::is_directory(st)) throw ConfigError(yaml_path + ": is a folder, not a YAML config file");
  if (!fs::is_regular_file(st)) throw ConfigError(yaml_path + ": is not a regular file");
  if (fs::file_size(yaml_path, ec) > kMaxConfigBytes)
    throw ConfigError(yaml_path + ": " + std::to_string(fs::file_size(yaml_path, ec)) +
                      " bytes: larger than any run config (limit " + std::to_string(kMaxConfigBytes) + ")");
  std::ifstream in(yaml_path, std::ios::binary);
  std::stringstream text;
  if (!in || !(text << in.rdbuf()))
    if (fs::file_size(yaml_path, ec) > 0)
      throw ConfigError(yaml_path + ": cannot read config file: " + std::strerror(errno));
  try {
    check_one_document(text.str(), yaml_path);
    return YAML::Load(text.str());
  } catch (const YAML::DeepRecursion& e) {
    throw ConfigError(yaml_path + ":" + std::to_string(e.mark.line + 1) + ": yaml: nested too deep (the parser stops at depth " +
                      std::to_string(e.depth()) + "); a run config is sections of keys, two levels");
  } catch (const YAML::ParserException& e) {
    throw ConfigError(yaml_path + ":" + std::to_string(e.mark.line + 1) + ": yaml: syntax error: " + e.msg);
  } catch (const YAML::Exception& e) {
    throw ConfigError(yaml_path + ":" + std::to_string(e.mark.line + 1) + ": yaml: " + e.msg);
  }
}

// --set section.key=value over the file's document, before any check: the loader then
// validates the value like any key of the file. Ctx remembers which keys (and sections) came
// from the command line, so their messages name the --set instead of a line.
void apply_overrides(YAML::Node& root, const std::vector<std::string>& overrides, Ctx& ctx) {
  for (const std::string& o : overrides) {
    const size_t eq = o.find('='), dot = o.find('.');
    if (eq == std::string::npos || dot == std::string::npos || dot == 0 || dot + 1 >= eq)
      throw ConfigError(ctx.file + ": --set " + o + ": expected section.key=value, e.g. --set parallel.tp=8");
    const std::string section = o.substr(0, dot), key = o.substr(dot + 1, eq - dot - 1), text = o.substr(eq + 1);
    if (key.find('.') != std::string::npos)
      throw ConfigError(ctx.file + ": --set " + o + ": a key is section.key, two levels (got " + o.substr(0, eq) + ")");
    YAML::Node value;
    try {
      value = YAML::Load(text);
    } catch (const YAML::Exception& e) {
      throw ConfigError(ctx.file + ": --set " + o + ": the value is not valid YAML: " + e.msg);
    }
    if (root.IsNull() || !root.IsDefined()) root = YAML::Node(YAML::NodeType::Map);
    if (!root.IsMap()) return;  // the loader reports the top level
    if (!root[section] || root[section].IsNull()) {
      root[section] = YAML::Node(YAML::NodeType::Map);
      ctx.overrides[section] = o;
    }
    if (!root[section].IsMap()) return;  // the loader reports the section's type
    root[section][key] = value;
    ctx.overrides[section + "." + key] = o;
  }
}

}  // namespace

RunConfig load_run_config(const std::string& yaml_path) { return load_run_config(yaml_path, {}, nullptr); }

RunConfig load_run_config(const std::string& yaml_path, const std::vector<std::string>& overrides,
                          DeviceConfig* device) {
  RunConfig c;
  c.source_path = yaml_path;
  Ctx ctx{yaml_path, fs::absolute(fs::path(yaml_path)).parent_path(), {}, {}, {}};

  YAML::Node root = parse_single_document(yaml_path);
  apply_overrides(root, overrides, ctx);
  DeviceConfig ignored;
  std::vector<SectionSpec> sections = spec(c, device ? *device : ignored);
  std::vector<std::string> section_names;
  for (const auto& s : sections) section_names.push_back(s.name);

  if (!root.IsNull() && !root.IsMap())
    ctx.fail(root.Mark().line + 1, "(top level)",
             "expected a mapping of sections " + join(section_names), show(root));

  std::set<std::string> seen;
  for (const auto& sec : root) {
    const std::string name = sec.first.IsScalar() ? sec.first.Scalar() : show(sec.first);
    const int line = ctx.overrides.count(name) ? 0 : sec.first.Mark().line + 1;
    auto spec_it = std::find_if(sections.begin(), sections.end(),
                                [&](const SectionSpec& s) { return s.name == name; });
    if (spec_it == sections.end())
      ctx.fail(line, name,
               "unknown section" + suggestion(name, section_names, sections, "") +
                   ", valid sections are " + join(section_names),
               name);
    if (!seen.insert(name).second) ctx.fail(line, name, "section appears twice", name);
    ctx.lines[name] = line;
    if (sec.second.IsNull()) continue;  // an empty section: all defaults
    if (!sec.second.IsMap())
      ctx.fail(line, name, "expected a mapping of keys under section '" + name + "'",
               show(sec.second));

    std::vector<std::string> key_names;
    for (const auto& k : spec_it->keys) key_names.push_back(k.name);
    for (const auto& kv : sec.second) {
      const std::string key = kv.first.IsScalar() ? kv.first.Scalar() : show(kv.first);
      const std::string label = name + "." + key;
      const int kline = ctx.overrides.count(label) ? 0 : kv.first.Mark().line + 1;
      auto key_it = std::find_if(spec_it->keys.begin(), spec_it->keys.end(),
                                 [&](const KeySpec& k) { return k.name == key; });
      if (key_it == spec_it->keys.end()) {
        std::string hint = suggestion(key, key_names, sections, name);
        ctx.fail(kline, label,
                 "unknown key" + (hint.empty() ? ", valid keys are " + join(key_names) : hint),
                 key);
      }
      if (!seen.insert(label).second) ctx.fail(kline, label, "key appears twice", key);
      ctx.lines[label] = kline;
      key_it->read(Field{ctx, label, kline, kv.second});
    }
  }

  adopt_hf_shape(c, ctx);
  fit_lora_targets(c, ctx);
  check_consistency(c, ctx);
  const DeviceConfig& dev = device ? *device : ignored;
  if (dev.backend == "cpu" && dev.comm == "nccl")
    ctx.fail(ctx.line_of({"device.comm"}), "device.comm",
             "NCCL moves GPU memory, but device.backend: cpu computes in host memory (use auto or mpi)", "nccl");
  check_files(c, ctx);
  return c;
}

}  // namespace lora
