// The SwiGLU gate of the Llama family's MLP (Shazeer 2020; Hugging Face's LlamaMLP):
// down_proj(silu(gate_proj(y)) * up_proj(y)), of which this is the middle:
// out = silu(gate) * up, silu(a) = a * sigmoid(a). The Llama block is not built yet.
#pragma once
#include <cstddef>

namespace lora {

template <typename T>
void swiglu_forward(T* out, const T* gate, const T* up, size_t n);

// dgate = dout * up * silu'(gate), dup = dout * silu(gate), with
// silu'(a) = sigmoid(a) * (1 + a * (1 - sigmoid(a))). Overwrites both.
template <typename T>
void swiglu_backward(T* dgate, T* dup, const T* dout, const T* gate, const T* up, size_t n);

}  // namespace lora
