#include "model/ops/cuda/cuda_check.h"
#include "model/ops/cuda/device.h"
#include "model/ops/cuda/launch.h"
#include "model/ops/rope.h"

namespace lora::cuda {

// One thread per rotated pair (row, head, j < half), as the CPU's rotate(); sign -1 is the
// inverse rotation the backward applies.
namespace {
__global__ void rope_kernel(float* x, const float* cos, const float* sin, int T_, int n_heads, int head_dim, int ld,
                            float sign, size_t n) {
  const int half = head_dim / 2;
  for (size_t k = blockIdx.x * size_t(blockDim.x) + threadIdx.x; k < n; k += size_t(gridDim.x) * blockDim.x) {
    const size_t r = k / (size_t(n_heads) * half);
    const int h = static_cast<int>(k / half % n_heads), j = static_cast<int>(k % half);
    const size_t t = (r % T_) * half + j;
    float* v = x + r * ld + size_t(h) * head_dim;
    const float a = v[j], b = v[j + half], c = cos[t], s = sign * sin[t];
    v[j] = a * c - b * s;
    v[j + half] = b * c + a * s;
  }
}

void rotate(float* x, const float* cos, const float* sin, int rows, int T_, int n_heads, int head_dim, int ld,
            float sign) {
  const size_t n = size_t(rows) * n_heads * (head_dim / 2);
  if (n == 0) return;
  rope_kernel<<<blocks_for(n), kThreads, 0, compute_stream()>>>(x, cos, sin, T_, n_heads, head_dim, ld, sign, n);
  LORA_CUDA_CHECK_LAUNCH("rope_kernel");
}
}  // namespace

template <>
void rope_forward<float>(float* x, const float* cos, const float* sin, int rows, int T_, int n_heads, int head_dim,
                         int ld) {
  rotate(x, cos, sin, rows, T_, n_heads, head_dim, ld, 1.0f);
}

template <>
void rope_backward<float>(float* dx, const float* cos, const float* sin, int rows, int T_, int n_heads, int head_dim,
                          int ld) {
  rotate(dx, cos, sin, rows, T_, n_heads, head_dim, ld, -1.0f);
}

}  // namespace lora::cuda
