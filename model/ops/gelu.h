// GELU, tanh approximation (GPT-2's): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
#pragma once
#include <cstddef>

namespace lora {

template <typename T>
void gelu_forward(T* out, const T* x, size_t n);

// dx = dout * gelu'(x); dx may alias dout.
template <typename T>
void gelu_backward(T* dx, const T* dout, const T* x, size_t n);

// The CUDA twin (model/ops/cuda/gelu.cu): the same signatures over device pointers,
// float only; the CPU functions above are the reference it is tested against.
namespace cuda {
template <typename T>
void gelu_forward(T* out, const T* x, size_t n);
template <typename T>
void gelu_backward(T* dx, const T* dout, const T* x, size_t n);
}  // namespace cuda

}  // namespace lora
