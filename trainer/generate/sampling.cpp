#include "trainer/generate/sampling.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <vector>

#include "model/rng.h"

namespace lora {

std::string SamplingConfig::describe() const {
  if (greedy()) return "greedy";
  char buf[160];
  std::snprintf(buf, sizeof buf, "temperature %g, top-k %s, top-p %g, seed %llu", temperature,
                top_k > 0 ? std::to_string(top_k).c_str() : "off", top_p, static_cast<unsigned long long>(seed));
  return buf;
}

int sample_token(const float* logits, int V, const SamplingConfig& c, uint64_t step) {
  if (c.greedy()) return static_cast<int>(std::max_element(logits, logits + V) - logits);
  // Candidates by falling logit (ties: lower id first); only the first top_k can survive.
  std::vector<int> order(V);
  std::iota(order.begin(), order.end(), 0);
  const int k = c.top_k > 0 ? std::min(c.top_k, V) : V;
  const auto by_logit = [&](int a, int b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
  std::partial_sort(order.begin(), order.begin() + k, order.end(), by_logit);
  order.resize(k);
  // Softmax of logits / temperature over the candidates, in double.
  std::vector<double> p(k);
  const double top = logits[order[0]] / c.temperature;
  double sum = 0;
  for (int i = 0; i < k; ++i) sum += (p[i] = std::exp(logits[order[i]] / c.temperature - top));
  // Nucleus: the shortest prefix whose mass reaches top_p (at least one token).
  int keep = k;
  if (c.top_p < 1) {
    double mass = 0;
    for (keep = 0; keep < k;) {
      mass += p[keep++] / sum;
      if (mass >= c.top_p) break;
    }
  }
  double kept = 0;
  for (int i = 0; i < keep; ++i) kept += p[i];
  const double u = uniform01_double(c.seed, RngPurpose::Sampling, 0, step) * kept;
  double acc = 0;
  for (int i = 0; i < keep; ++i)
    if ((acc += p[i]) > u) return order[i];
  return order[keep - 1];  // u within rounding of the total
}

}  // namespace lora
