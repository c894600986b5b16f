// GELU, tanh approximation (GPT-2's): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
#pragma once
#include <cstddef>

namespace lora {

template <typename T>
void gelu_forward(T* out, const T* x, size_t n);

// dx = dout * gelu'(x); dx may alias dout.
template <typename T>
void gelu_backward(T* dx, const T* dout, const T* x, size_t n);

// The float kernels at one vector width: lanes 4 (SSE2), 8 (AVX2 + FMA) or 16 (AVX-512F),
// which this CPU must run (lanes <= simd_lanes(), model/ops/cpu/fast_math.h; else
// std::invalid_argument). gelu_forward<float> and gelu_backward<float> call them at the widest
// width; the tests compare every width against the double reference.
void gelu_forward_lanes(int lanes, float* out, const float* x, size_t n);
void gelu_backward_lanes(int lanes, float* dx, const float* dout, const float* x, size_t n);

// The CUDA twin (model/ops/cuda/gelu.cu): the same signatures over device pointers,
// float only; the CPU functions above are the reference it is tested against.
namespace cuda {
template <typename T>
void gelu_forward(T* out, const T* x, size_t n);
template <typename T>
void gelu_backward(T* dx, const T* dout, const T* x, size_t n);
}  // namespace cuda

}  // namespace lora
