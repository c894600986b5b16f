#include <algorithm>
#include <vector>

#include "model/ops/cuda/cuda_check.h"
#include "model/ops/cuda/device.h"
#include "model/ops/cuda/launch.h"
#include "model/ops/grad_norm.h"

namespace lora::cuda {

namespace {
constexpr unsigned kPartials = 1024;  // blocks of the first pass; the host adds their sums in order

__global__ void sum_of_squares_kernel(double* partial, const float* x, size_t n) {
  __shared__ double shared[32];
  double s = 0;
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x)
    s += double(x[i]) * x[i];
  s = block_sum(s, shared);
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

__global__ void scale_kernel(float* x, size_t n, float c) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) x[i] *= c;
}
}  // namespace

double sum_of_squares(const float* x, size_t n) {
  if (n == 0) return 0;
  const unsigned blocks = std::min<unsigned>(kPartials, blocks_for(n));
  double* partial = static_cast<double*>(scratch(blocks * sizeof(double), 1));
  sum_of_squares_kernel<<<blocks, kThreads, 0, compute_stream()>>>(partial, x, n);
  LORA_CUDA_CHECK_LAUNCH("sum_of_squares_kernel");
  std::vector<double> host(blocks);
  LORA_CUDA_CHECK(cudaMemcpyAsync(host.data(), partial, blocks * sizeof(double), cudaMemcpyDeviceToHost,
                                  compute_stream()));
  synchronize();
  double sum = 0;
  for (double p : host) sum += p;
  return sum;
}

void scale_in_place(float* x, size_t n, float c) {
  if (n == 0) return;
  scale_kernel<<<blocks_for(n), kThreads, 0, compute_stream()>>>(x, n, c);
  LORA_CUDA_CHECK_LAUNCH("scale_kernel");
}

}  // namespace lora::cuda
