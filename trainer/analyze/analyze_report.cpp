#include "trainer/analyze/analyze_report.h"

#include <algorithm>
#include <cmath>

namespace lora {

namespace {

constexpr int kShownGrid = 8;  // φ rows and columns printed; the JSON has them all

nlohmann::json finite_or_null(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }

void print_phi(const SimilarityResult& s, const AnalysisReport& rep, std::FILE* out) {
  const auto& A = rep.adapters[s.a];
  const auto& B = rep.adapters[s.b];
  const int rows = int(s.phi.rows()), cols = int(s.phi.cols());
  std::fprintf(out, "\nlayer %d, module %s: [%d] r %d (i, rows) vs [%d] r %d (j, columns)", s.layer,
               lora_target_name(s.target), s.a + 1, A.lora.r, s.b + 1, B.lora.r);
  if (rows > kShownGrid || cols > kShownGrid)
    std::fprintf(out, "; first %d x %d of %d x %d shown", std::min(rows, kShownGrid), std::min(cols, kShownGrid), rows,
                 cols);
  std::fprintf(out, "\n       ");
  for (int j = 0; j < std::min(cols, kShownGrid); ++j) std::fprintf(out, "  j=%-4d", j + 1);
  std::fprintf(out, "\n");
  for (int i = 0; i < std::min(rows, kShownGrid); ++i) {
    std::fprintf(out, "  i=%-3d", i + 1);
    for (int j = 0; j < std::min(cols, kShownGrid); ++j) std::fprintf(out, "  %.4f", s.phi(i, j));
    std::fprintf(out, "\n");
  }
}

}  // namespace

void print_analysis(const AnalysisReport& rep, std::FILE* out) {
  std::fprintf(out, "adapters (base: %s):\n", rep.base.c_str());
  for (size_t k = 0; k < rep.adapters.size(); ++k) {
    const AnalyzedAdapter& a = rep.adapters[k];
    std::fprintf(out, "  [%zu] %s  (%s; r %d, alpha %g%s, scale %g, targets %s from %s)\n", k + 1, a.path.c_str(),
                 a.kind.c_str(), a.lora.r, double(a.lora.alpha), a.lora.rslora ? ", rslora" : "",
                 double(a.lora.scale()), a.lora.target_list().c_str(), a.lora_from.c_str());
  }
  if (!rep.similarity.empty())
    std::fprintf(out, "\nsubspace similarity phi(A_a, A_b, i, j) = ||U_a^i' U_b^j||_F^2 / min(i, j), U^i: the top-i "
                      "right singular vectors of A (1: one span holds the other, 0: orthogonal)\n");
  for (const SimilarityResult& s : rep.similarity) print_phi(s, rep, out);
  if (rep.amplification.empty()) return;
  std::fprintf(out,
               "\namplification of dW = s B A on its base weight W (Hu et al. 2021, Table 7): ||U' W V'||_F with U, V\n"
               "the top-r singular directions of dW, of W itself, or random (mean of %d draws, seed %llu; expected\n"
               "r ||W||_F / sqrt(out in)); factor = ||dW||_F / ||U' W V'||_F with dW's U, V\n",
               rep.random_draws, static_cast<unsigned long long>(rep.seed));
  std::fprintf(out, "%-8s %5s %-6s %4s %11s %11s %11s %11s %11s %11s %9s\n", "adapter", "layer", "module", "r",
               "||W||_F", "||dW||_F", "proj dW", "proj W", "proj random", "(expected)", "factor");
  for (const AmplificationResult& a : rep.amplification) {
    char tag[16];
    std::snprintf(tag, sizeof tag, "[%d]", a.adapter + 1);
    const Amplification& m = a.amp;
    std::fprintf(out, "%-8s %5d %-6s %4d %11.5g %11.5g %11.5g %11.5g %11.5g %11.5g %9.4g\n", tag, a.layer,
                 lora_target_name(a.target), m.r, m.w_norm, m.delta_norm, m.proj_delta, m.proj_w,
                 m.proj_random_mean, m.proj_random_expected, m.factor);
  }
}

nlohmann::ordered_json analysis_json(const AnalysisReport& rep) {
  using json = nlohmann::ordered_json;
  json adapters = json::array();
  for (size_t k = 0; k < rep.adapters.size(); ++k) {
    const AnalyzedAdapter& a = rep.adapters[k];
    adapters.push_back({{"index", k + 1},
                        {"path", a.path},
                        {"kind", a.kind},
                        {"lora_from", a.lora_from},
                        {"r", a.lora.r},
                        {"alpha", a.lora.alpha},
                        {"rslora", a.lora.rslora},
                        {"scale", a.lora.scale()},
                        {"targets", a.lora.target_list()}});
  }
  json similarity = json::array();
  for (const SimilarityResult& s : rep.similarity) {
    json grid = json::array();
    for (int i = 0; i < s.phi.rows(); ++i) {
      json row = json::array();
      for (int j = 0; j < s.phi.cols(); ++j) row.push_back(s.phi(i, j));
      grid.push_back(std::move(row));
    }
    similarity.push_back({{"layer", s.layer},
                          {"module", lora_target_name(s.target)},
                          {"a", s.a + 1},
                          {"b", s.b + 1},
                          {"r_a", rep.adapters[s.a].lora.r},
                          {"r_b", rep.adapters[s.b].lora.r},
                          {"max_i", s.phi.rows()},
                          {"max_j", s.phi.cols()},
                          {"phi", std::move(grid)}});
  }
  json amplification = json::array();
  for (const AmplificationResult& a : rep.amplification) {
    const Amplification& m = a.amp;
    amplification.push_back({{"adapter", a.adapter + 1},
                             {"layer", a.layer},
                             {"module", lora_target_name(a.target)},
                             {"out", a.out},
                             {"in", a.in},
                             {"r", m.r},
                             {"scale", rep.adapters[a.adapter].lora.scale()},
                             {"w_norm", m.w_norm},
                             {"delta_norm", m.delta_norm},
                             {"delta_singular_values", m.delta_singular},
                             {"w_singular_values", m.w_singular},
                             {"proj_delta", m.proj_delta},
                             {"proj_w", m.proj_w},
                             {"proj_random", m.proj_random},
                             {"proj_random_mean", m.proj_random_mean},
                             {"proj_random_expected", m.proj_random_expected},
                             {"factor", finite_or_null(m.factor)}});
  }
  return {{"format", "lora_dist analyze v1"},
          {"base", rep.base},
          {"random_draws", rep.random_draws},
          {"seed", rep.seed},
          {"adapters", std::move(adapters)},
          {"similarity", std::move(similarity)},
          {"amplification", std::move(amplification)}};
}

}  // namespace lora
