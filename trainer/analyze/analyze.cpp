#include "trainer/analyze/analyze.h"

#include <spawn.h>
#include <sys/wait.h>

#include <Eigen/Dense>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>

#include "comm/mpi_communicator.h"
#include "comm/mpi_singleton.h"
#include "io/checkpoint.h"
#include "io/input_error.h"
#include "io/peft_adapter.h"
#include "model/gpt.h"
#include "model/param_layout.h"
#include "trainer/analyze/analyze_report.h"
#include "trainer/config/config_loader.h"
#include "trainer/train/load_base.h"
#include "trainer/analyze/subspace.h"

extern char** environ;

namespace lora {

namespace fs = std::filesystem;

namespace {

// Random draws per amplification row are streams [base, base + kMaxDraws) of one (layer,
// module); main.cpp caps --random-draws at this.
constexpr uint32_t kMaxDraws = 10000;

using RowMajorF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// An adapter's factors as the layout holds them: row-major float, [rows, cols].
Eigen::MatrixXd to_double(const float* p, int rows, int cols) {
  return Eigen::Map<const RowMajorF>(p, rows, cols).cast<double>();
}

struct LoadedAdapter {
  AnalyzedAdapter info;
  LoraLayout layout;          // tp 1: full tensors
  std::vector<float> params;  // in layout order

  Eigen::MatrixXd factor(int layer, int target, char which) const {
    const TensorSpec& s = layout.at(lora_pair_name(layer, target) + which);
    return to_double(params.data() + s.offset, s.rows, s.cols);
  }
};

// r, alpha and targets: an HDF5 adapter's own attributes unless a YAML is given; a PEFT
// folder's from that YAML or the base config's lora: section. Then the factors, verified as
// every other reader verifies them (seal, model shape, base fingerprint, shapes, finite).
LoadedAdapter load_adapter(const std::string& spec_text, const RunConfig& base_cfg, const BaseFingerprint& fp) {
  const AdapterSpec spec = parse_adapter_spec(spec_text);
  LoadedAdapter a;
  a.info.path = spec.path;
  std::error_code ec;
  a.info.kind = fs::is_directory(spec.path, ec) ? "peft" : "hdf5";
  RunConfig cfg = base_cfg;  // the base model is always --yaml's: W must be the one trained on
  if (!spec.yaml.empty()) {
    cfg.lora = load_run_config(spec.yaml).lora;
    a.info.lora_from = spec.yaml;
  } else if (a.info.kind == "hdf5") {
    cfg.lora = read_adapter_lora_config(spec.path);
    a.info.lora_from = "its /adapter attributes";
  } else {
    a.info.lora_from = base_cfg.source_path;
  }
  a.info.lora = cfg.lora;
  a.layout = lora_layout(cfg.model, cfg.lora, 1);
  a.params.assign(a.layout.total, 0.0f);
  if (a.info.kind == "peft") read_peft_adapter(spec.path, cfg.lora, cfg.model, a.layout, a.params);
  else read_adapter(spec.path, cfg.model, cfg.lora, fp, a.layout, 0, a.params.data());
  return a;
}

// "q,v" -> targets; empty: those every adapter has.
std::vector<int> choose_modules(const std::string& list, const std::vector<LoadedAdapter>& adapters, int first_layer) {
  std::vector<int> targets;
  if (list.empty()) {
    for (int t = 0; t < kNumTargets; ++t) {
      bool everywhere = true;
      for (const LoadedAdapter& a : adapters) everywhere = everywhere && a.info.lora.targets[t];
      if (everywhere) targets.push_back(t);
    }
    if (targets.empty()) {
      std::string have;
      for (const LoadedAdapter& a : adapters) have += "; " + a.info.path + ": " + a.info.lora.target_list();
      throw ConfigError("the adapters share no LoRA target" + have + " (compare adapters of a common module)");
    }
    return targets;
  }
  std::stringstream names(list);
  for (std::string name; std::getline(names, name, ',');) {
    const int t = lora_target_of(name);
    if (t < 0) throw ConfigError("--module " + list + ": '" + name + "' is not one of " + lora_target_names());
    for (const LoadedAdapter& a : adapters)
      if (!a.info.lora.targets[t])
        throw ConfigError("--module " + name + ": " + a.info.path + " has no tensor " + lora_pair_name(first_layer, t) +
                          "A (its LoRA targets are " + a.info.lora.target_list() + ")");
    targets.push_back(t);
  }
  return targets;
}

// The base weight a target's LoRA pair adds to, [out, in]: q, k, v are row blocks of the
// fused attn.qkv.weight (rows q; k; v), gate and up of mlp.fc.weight, the others whole tensors.
Eigen::MatrixXd base_weight(GptModel<float>& model, int layer, int target) {
  const LoraBaseWeight w = lora_base_weight(model.arch(), target);
  const TensorSpec& s = model.base_layout().at("h." + std::to_string(layer) + "." + w.tensor);
  int out = 0, in = 0;
  lora_target_shape(model.arch(), target, &out, &in);
  return to_double(model.base().data() + s.offset + size_t(w.first_row) * s.cols, out, in);
}

// The frozen base of cfg on this one process, in fp32 whatever model.dtype is (an HF BF16 or
// F16 file widens exactly), as lora_dist merge loads it.
struct BaseModel {
  MpiCommunicator self{MPI_COMM_SELF, 1, 1};
  std::unique_ptr<GptModel<float>> model;
};

void run_plot_script(const std::string& json, const std::string& dir) {
  const std::string script = std::string(LORA_SOURCE_DIR) + "/launch/plot_analysis.py";
  // Debian's python3-matplotlib belongs to /usr/bin/python3; a python3 earlier on PATH (a
  // virtualenv, /usr/local) may not have it.
  std::error_code ec;
  const std::string python = fs::exists("/usr/bin/python3", ec) ? "/usr/bin/python3" : "python3";
  std::vector<std::string> args = {python, script, "--json", json, "--out", dir};
  std::vector<char*> argv;
  for (std::string& s : args) argv.push_back(s.data());
  argv.push_back(nullptr);
  std::fflush(stdout);
  pid_t pid = 0;
  const int err = posix_spawnp(&pid, python.c_str(), nullptr, nullptr, argv.data(), environ);
  if (err != 0) throw std::runtime_error("--plots: cannot start " + python + ": " + std::strerror(err));
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw std::runtime_error("--plots: " + script + " failed (its message is above); the numbers are in " + json +
                             ": run it again with " + python + " " + script + " --json " + json + " --out " + dir);
}

int analyze(const AnalyzeOptions& o) {
  const RunConfig cfg = load_run_config(o.yaml);
  const std::vector<int> layers = parse_layer_list(o.layers, cfg.model.n_layer);
  if (o.adapters.size() < 1) throw ConfigError("--adapter: at least one adapter is needed");
  const std::vector<std::pair<int, int>> pairs =
      o.adapters.size() < 2 ? std::vector<std::pair<int, int>>{} : parse_pair_list(o.pairs, int(o.adapters.size()));

  const BaseFingerprint fp = base_fingerprint(cfg.model);
  std::vector<LoadedAdapter> adapters;
  for (const std::string& spec : o.adapters) adapters.push_back(load_adapter(spec, cfg, fp));
  const std::vector<int> targets = choose_modules(o.modules, adapters, layers.front());
  for (const auto& [a, b] : pairs)
    for (const auto& [limit, k, flag] : {std::tuple{o.max_i, a, "--max-i"}, std::tuple{o.max_j, b, "--max-j"}})
      if (limit > adapters[k].info.lora.r)
        throw ConfigError(std::string(flag) + " " + std::to_string(limit) + ": adapter [" + std::to_string(k + 1) +
                          "] " + adapters[k].info.path + " has r " + std::to_string(adapters[k].info.lora.r) +
                          " (i and j run up to the r of the pair's first and second adapter)");

  AnalysisReport report;
  report.base = fp.description;
  report.random_draws = o.random_draws;
  report.seed = o.seed;
  for (const LoadedAdapter& a : adapters) report.adapters.push_back(a.info);

  for (int layer : layers)
    for (int t : targets) {
      std::vector<Eigen::MatrixXd> bases;  // U_A of each adapter
      for (const LoadedAdapter& a : adapters) bases.push_back(right_singular_vectors(a.factor(layer, t, 'A')));
      for (const auto& [a, b] : pairs) {
        const int max_i = o.max_i ? o.max_i : adapters[a].info.lora.r;
        const int max_j = o.max_j ? o.max_j : adapters[b].info.lora.r;
        report.similarity.push_back({layer, t, a, b, subspace_similarity(bases[a], bases[b], max_i, max_j)});
      }
    }

  // The base: MPI as a singleton (one process, no mpirun), only for the one-rank model.
  MpiSingleton mpi;
  {
    BaseModel base;
    ModelConfig mc = cfg.model;
    mc.dtype = "fp32";
    // Any adapter's LoRA settings do: only the base buffers are used (not --yaml's lora:,
    // which a PEFT-less analysis never needs to be meaningful).
    base.model = std::make_unique<GptModel<float>>(mc, adapters.front().info.lora, base.self, 1, 1);
    load_frozen_base(cfg, *base.model, base.self, /*log=*/nullptr);
    for (int layer : layers)
      for (int t : targets) {
        const Eigen::MatrixXd W = base_weight(*base.model, layer, t);
        const SingularBasis w_svd = thin_svd(W);  // once per weight, shared by the adapters
        for (size_t k = 0; k < adapters.size(); ++k) {
          const LoadedAdapter& a = adapters[k];
          const Amplification amp =
              amplification(W, w_svd, a.factor(layer, t, 'B'), a.factor(layer, t, 'A'), a.info.lora.scale(),
                            o.random_draws, o.seed, lora_stream(base.model->arch(), layer, t) * kMaxDraws);
          report.amplification.push_back({int(k), layer, t, int(W.rows()), int(W.cols()), amp});
        }
      }
  }

  print_analysis(report, stdout);
  std::string json = o.json;
  if (!o.plots.empty()) {
    std::error_code ec;
    fs::create_directories(o.plots, ec);
    if (!fs::is_directory(o.plots, ec)) throw ConfigError("--plots " + o.plots + ": cannot create the folder");
    if (json.empty()) json = (fs::path(o.plots) / "analysis.json").string();
  }
  if (!json.empty()) {
    std::ofstream f(json);
    f << analysis_json(report).dump(1) << "\n";
    f.close();
    if (!f) throw ConfigError("--json " + json + ": cannot write the file");
    std::printf("\nwrote %s\n", json.c_str());
  }
  if (!o.plots.empty()) run_plot_script(json, o.plots);
  return 0;
}

}  // namespace

AdapterSpec parse_adapter_spec(const std::string& spec) {
  const size_t at = spec.rfind('@');
  if (at == std::string::npos) return {spec, ""};
  const std::string yaml = spec.substr(at + 1);
  const auto ends_with = [&](const char* s) {
    const size_t n = std::strlen(s);
    return yaml.size() > n && yaml.compare(yaml.size() - n, n, s) == 0;
  };
  if (!ends_with(".yaml") && !ends_with(".yml")) return {spec, ""};
  return {spec.substr(0, at), yaml};
}

std::vector<int> parse_layer_list(const std::string& list, int n_layer) {
  std::vector<int> layers;
  if (list == "all") {
    for (int l = 0; l < n_layer; ++l) layers.push_back(l);
    return layers;
  }
  std::stringstream items(list);
  for (std::string item; std::getline(items, item, ',');) {
    size_t used = 0;
    int l = -1;
    try {
      l = std::stoi(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (item.empty() || used != item.size())
      throw ConfigError("--layer " + list + ": '" + item + "' is not a layer number (a list like 0,5,11, or all)");
    if (l < 0 || l >= n_layer)
      throw ConfigError("--layer " + item + ": out of range: the model has " + std::to_string(n_layer) +
                        " layers, 0 to " + std::to_string(n_layer - 1));
    layers.push_back(l);
  }
  if (layers.empty()) throw ConfigError("--layer '" + list + "': no layer given");
  return layers;
}

std::vector<std::pair<int, int>> parse_pair_list(const std::string& list, int n) {
  std::vector<std::pair<int, int>> pairs;
  if (list == "first" || list == "all") {
    for (int a = 0; a < (list == "first" ? 1 : n); ++a)
      for (int b = a + 1; b < n; ++b) pairs.emplace_back(a, b);
    return pairs;
  }
  std::stringstream items(list);
  for (std::string item; std::getline(items, item, ',');) {
    int a = 0, b = 0;
    char dash = 0, rest = 0;
    std::istringstream in(item);
    if (!(in >> a >> dash >> b) || dash != '-' || (in >> rest))
      throw ConfigError("--pairs " + list + ": '" + item + "' is not A-B (adapter numbers, 1 = the first --adapter)");
    if (a < 1 || a > n || b < 1 || b > n)
      throw ConfigError("--pairs " + item + ": there are " + std::to_string(n) + " adapters, numbered 1 to " +
                        std::to_string(n));
    if (a == b) throw ConfigError("--pairs " + item + ": an adapter compared with itself is 1 everywhere");
    pairs.emplace_back(a - 1, b - 1);
  }
  if (pairs.empty()) throw ConfigError("--pairs '" + list + "': no pair given");
  return pairs;
}

int analyze_command(const AnalyzeOptions& o) {
  try {
    return analyze(o);
  } catch (const ConfigError& e) {
    std::fprintf(stderr, "lora_dist: analyze: %s\n", e.what());
    return kExitConfig;
  } catch (const InputError& e) {  // CheckpointError included: the adapter file is named
    std::fprintf(stderr, "lora_dist: input error: %s\n", e.what());
    return kExitBadInput;
  } catch (const std::runtime_error& e) {  // the plot script
    std::fprintf(stderr, "lora_dist: analyze: %s\n", e.what());
    return 1;
  }
}

}  // namespace lora
