#include <cuda_bf16.h>

#include "model/ops/cuda/cuda_check.h"
#include "model/ops/cuda/device.h"
#include "model/ops/cuda/launch.h"
#include "model/ops/embedding.h"

namespace lora::cuda {

namespace {
__device__ inline float weight_at(const void* w, bool bf16, size_t i) {
  return bf16 ? __bfloat162float(static_cast<const __nv_bfloat16*>(w)[i]) : static_cast<const float*>(w)[i];
}

__global__ void embedding_forward_kernel(float* x, const int32_t* tokens, const void* wte, bool bf16, int v0, int Vl,
                                         int M, int d) {
  const size_t n = size_t(M) * d;
  for (size_t idx = blockIdx.x * size_t(blockDim.x) + threadIdx.x; idx < n; idx += size_t(gridDim.x) * blockDim.x) {
    const int i = static_cast<int>(idx / d), j = static_cast<int>(idx % d);
    const int local = tokens[i] - v0;
    x[idx] = (local >= 0 && local < Vl) ? weight_at(wte, bf16, size_t(local) * d + j) : 0.0f;
  }
}

__global__ void add_positions_kernel(float* x, const void* wpe, bool bf16, int B, int Tn, int d, int pos0) {
  const size_t n = size_t(B) * Tn * d;
  for (size_t idx = blockIdx.x * size_t(blockDim.x) + threadIdx.x; idx < n; idx += size_t(gridDim.x) * blockDim.x) {
    const int i = static_cast<int>(idx / d), j = static_cast<int>(idx % d);
    x[idx] += weight_at(wpe, bf16, size_t(pos0 + i % Tn) * d + j);
  }
}

// One thread per column j of the table, summing the rows in token order (as the CPU does):
// a token repeated in the batch adds to the same row, and no atomics keeps it reproducible.
__global__ void embedding_backward_kernel(float* dwte, const float* dx, const int32_t* tokens, int v0, int Vl, int M,
                                          int d) {
  const int j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= d) return;
  for (int i = 0; i < M; ++i) {
    const int local = tokens[i] - v0;
    if (local >= 0 && local < Vl) dwte[size_t(local) * d + j] += dx[size_t(i) * d + j];
  }
}

__global__ void positions_backward_kernel(float* dwpe, const float* dx, int B, int Tn, int d, int pos0) {
  const int j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= d) return;
  for (int i = 0; i < B * Tn; ++i) dwpe[size_t(pos0 + i % Tn) * d + j] += dx[size_t(i) * d + j];
}
}  // namespace

template <>
void embedding_forward<float>(float* x, const int32_t* tokens, WeightArg<float> wte_local, int v0, int Vl, int M,
                              int d) {
  embedding_forward_kernel<<<blocks_for(size_t(M) * d), kThreads, 0, compute_stream()>>>(
      x, tokens, wte_local.data, wte_local.is_bf16(), v0, Vl, M, d);
  LORA_CUDA_CHECK_LAUNCH("embedding_forward_kernel");
}

template <>
void add_positions<float>(float* x, WeightArg<float> wpe, int B, int Tn, int d, int pos0) {
  add_positions_kernel<<<blocks_for(size_t(B) * Tn * d), kThreads, 0, compute_stream()>>>(x, wpe.data, wpe.is_bf16(),
                                                                                          B, Tn, d, pos0);
  LORA_CUDA_CHECK_LAUNCH("add_positions_kernel");
}

template <>
void embedding_backward<float>(float* dwte_local, const float* dx, const int32_t* tokens, int v0, int Vl, int M, int d) {
  embedding_backward_kernel<<<(d + kThreads - 1) / kThreads, kThreads, 0, compute_stream()>>>(dwte_local, dx, tokens,
                                                                                             v0, Vl, M, d);
  LORA_CUDA_CHECK_LAUNCH("embedding_backward_kernel");
}

template <>
void positions_backward<float>(float* dwpe, const float* dx, int B, int Tn, int d, int pos0) {
  positions_backward_kernel<<<(d + kThreads - 1) / kThreads, kThreads, 0, compute_stream()>>>(dwpe, dx, B, Tn, d, pos0);
  LORA_CUDA_CHECK_LAUNCH("positions_backward_kernel");
}

}  // namespace lora::cuda
