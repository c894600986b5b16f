#include <cmath>

#include "model/ops/cross_entropy.h"
#include "model/ops/cuda/cuda_check.h"
#include "model/ops/cuda/device.h"
#include "model/ops/cuda/launch.h"

namespace lora::cuda {

// One block per token row of the rank's vocabulary slice.
namespace {
__global__ void logits_max_kernel(float* row_max, const float* logits, int Vl, int valid) {
  __shared__ float shared[32];
  const float* row = logits + size_t(blockIdx.x) * Vl;
  float mx = -INFINITY;
  for (int j = threadIdx.x; j < valid; j += blockDim.x) mx = fmaxf(mx, row[j]);
  mx = block_max(mx, shared);
  if (threadIdx.x == 0) row_max[blockIdx.x] = mx;
}

__global__ void sumexp_and_target_kernel(float* stats, const float* logits, const float* row_max,
                                         const int32_t* targets, int v0, int Vl, int valid) {
  __shared__ float shared[32];
  const int i = blockIdx.x;
  const float* row = logits + size_t(i) * Vl;
  const float mx = row_max[i];
  float sum = 0;
  for (int j = threadIdx.x; j < valid; j += blockDim.x) sum += expf(row[j] - mx);
  sum = block_sum(sum, shared);
  if (threadIdx.x == 0) {
    const int t = targets[i] - v0;
    stats[2 * i] = sum;
    stats[2 * i + 1] = (t >= 0 && t < valid) ? row[t] : 0.0f;
  }
}

__global__ void cross_entropy_backward_kernel(float* logits, const float* row_max, const float* stats,
                                              const int32_t* targets, const float* weight, int v0, int Vl, int valid) {
  const int i = blockIdx.x;
  float* row = logits + size_t(i) * Vl;
  const float w = weight[i], inv = w / stats[2 * i], mx = row_max[i];
  const int t = targets[i] - v0;
  for (int j = threadIdx.x; j < Vl; j += blockDim.x)
    row[j] = j < valid ? expf(row[j] - mx) * inv - (j == t ? w : 0.0f) : 0.0f;
}
}  // namespace

template <>
void vocab_logits_max<float>(float* row_max, const float* logits, int M, int Vl, int valid) {
  if (M == 0) return;
  logits_max_kernel<<<M, kThreads, 0, compute_stream()>>>(row_max, logits, Vl, valid);
  LORA_CUDA_CHECK_LAUNCH("logits_max_kernel");
}

template <>
void vocab_sumexp_and_target<float>(float* stats, const float* logits, const float* row_max, const int32_t* targets,
                                    int v0, int M, int Vl, int valid) {
  if (M == 0) return;
  sumexp_and_target_kernel<<<M, kThreads, 0, compute_stream()>>>(stats, logits, row_max, targets, v0, Vl, valid);
  LORA_CUDA_CHECK_LAUNCH("sumexp_and_target_kernel");
}

template <>
void vocab_cross_entropy_backward<float>(float* logits, const float* row_max, const float* stats,
                                         const int32_t* targets, const float* weight, int v0, int M, int Vl,
                                         int valid) {
  if (M == 0) return;
  cross_entropy_backward_kernel<<<M, kThreads, 0, compute_stream()>>>(logits, row_max, stats, targets, weight, v0, Vl,
                                                                      valid);
  LORA_CUDA_CHECK_LAUNCH("cross_entropy_backward_kernel");
}

}  // namespace lora::cuda
