// What `lora_dist analyze` found (trainer/analyze/analyze.h), and its two forms: the table on
// stdout and the JSON file that holds every number (launch/plot_analysis.py draws from it).
#pragma once
#include <Eigen/Dense>
#include <cstdint>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "model/config.h"
#include "trainer/analyze/subspace.h"

namespace lora {

struct AnalyzedAdapter {
  std::string path;       // as given on the command line
  std::string kind;       // "hdf5" (adapter.h5 or checkpoint) or "peft" (folder)
  std::string lora_from;  // where its r, alpha, targets came from: "the file's /adapter attributes" or a YAML
  LoraConfig lora;
};

// φ of adapters a and b (0-based) at one layer and module; phi(i-1, j-1) = φ(A_a, A_b, i, j).
struct SimilarityResult {
  int layer = 0, target = 0, a = 0, b = 0;
  Eigen::MatrixXd phi;
};

// The amplification of one adapter's ΔW at one layer and module, on W [out, in].
struct AmplificationResult {
  int adapter = 0, layer = 0, target = 0, out = 0, in = 0;
  Amplification amp;
};

struct AnalysisReport {
  std::string base;  // the base model, in words ("model.init: hf, path gpt2/")
  std::vector<AnalyzedAdapter> adapters;
  std::vector<SimilarityResult> similarity;
  std::vector<AmplificationResult> amplification;
  int random_draws = 0;
  uint64_t seed = 0;
};

// The tables: the adapters, each φ grid (its top-left 8 x 8 when larger, with a note), then
// one amplification row per adapter, layer and module.
void print_analysis(const AnalysisReport& report, std::FILE* out);

// Everything, full φ grids included; +inf (a factor over a zero projection) as null.
nlohmann::ordered_json analysis_json(const AnalysisReport& report);

}  // namespace lora
