#include "model/ops/grad_norm.h"

namespace lora {

double sum_of_squares(const float* x, size_t n) {
  double sum = 0;
#pragma omp parallel for reduction(+ : sum) schedule(static)
  for (size_t i = 0; i < n; ++i) sum += static_cast<double>(x[i]) * x[i];
  return sum;
}

void scale_in_place(float* x, size_t n, float c) {
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; ++i) x[i] *= c;
}

}  // namespace lora
