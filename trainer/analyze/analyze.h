// `lora_dist analyze`: what trained LoRA adapters learnt, measured as §7 of Hu et al. 2021
// does (the math is trainer/analyze/subspace.h): the subspace similarity φ of two adapters' A
// matrices over every (i, j) (the paper's Figures 3 and 4), and how much each ΔW = s B A
// amplifies directions of its base weight W (Table 7). Adapters are adapter.h5 files,
// checkpoints or PEFT folders, each with its own r; the base comes from the run config.
// One process, no mpirun. The table goes to stdout, everything to --json, and --plots runs
// launch/plot_analysis.py on that JSON for the heatmaps.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace lora {

struct AnalyzeOptions {
  std::string yaml;                   // the run config: the base model (and a PEFT folder's default lora:)
  std::vector<std::string> adapters;  // in order; "PATH" or "PATH@RUN.yaml" (that config's lora: section)
  std::string layers = "all";         // "all" or a list "0,5,11"
  std::string modules;                // a list "q,v"; empty: every target all adapters have
  std::string pairs = "first";        // "first" (1 vs each other), "all" (every pair) or "1-2,2-3"
  int max_i = 0, max_j = 0;           // the φ grid's size; 0: the r of the pair's first / second adapter
  int random_draws = 10;              // random orthonormal U, V per amplification row
  uint64_t seed = 0;                  // of those draws
  std::string json;                   // write everything here
  std::string plots;                  // write the φ heatmaps (PNG) into this folder
};

// Returns the exit status: 0; 2 for a bad command line or config (a layer out of range, a
// module an adapter does not have, i or j beyond an adapter's r: each named); 3 for an
// unusable adapter or base (the file and the tensor or field named); 1 when the plot script
// fails.
int analyze_command(const AnalyzeOptions& o);

// "a.h5@run2.yaml" -> {"a.h5", "run2.yaml"}; "a.h5" -> {"a.h5", ""}. Only a suffix ending in
// .yaml or .yml after the last '@' is a config, so a path that holds '@' stays whole.
struct AdapterSpec {
  std::string path, yaml;
};
AdapterSpec parse_adapter_spec(const std::string& spec);

// "all" -> 0..n_layer-1; "0,3" -> {0, 3}. Throws ConfigError naming the bad entry.
std::vector<int> parse_layer_list(const std::string& list, int n_layer);

// Which adapters (0-based) are compared: "first" -> (0,1), (0,2), ...; "all" -> every
// (a, b) with a < b; "1-2,3-1" -> (0,1), (2,0) (1-based in the text, as the table prints
// them). Throws ConfigError for a malformed entry, an index beyond `n`, or a self-pair.
std::vector<std::pair<int, int>> parse_pair_list(const std::string& list, int n);

}  // namespace lora
