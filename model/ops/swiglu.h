// The SwiGLU gate of the Llama family's MLP (Shazeer 2020; Hugging Face's LlamaMLP):
// down_proj(silu(gate_proj(y)) * up_proj(y)), of which this is the middle:
// out = silu(gate) * up, silu(a) = a * sigmoid(a). gate_proj and up_proj are one fused
// column-parallel projection, so each row of its output h is [gate | up], F wide each (this
// rank's F = ffn / tp of both).
#pragma once

namespace lora {

// out [M x F] = silu(h[:, :F]) * h[:, F:], h [M x 2F].
template <typename T>
void swiglu_forward(T* out, const T* h, int M, int F);

// dh [M x 2F] = the gradient of h given dout [M x F]; overwrites dh:
// dgate = dout * up * silu'(gate), dup = dout * silu(gate), with
// silu'(a) = sigmoid(a) * (1 + a * (1 - sigmoid(a))).
template <typename T>
void swiglu_backward(T* dh, const T* dout, const T* h, int M, int F);

// The float kernels at one vector width (4, 8 or 16 lanes, as gelu_forward_lanes in gelu.h);
// swiglu_forward<float> and swiglu_backward<float> run the widest this CPU has.
void swiglu_forward_lanes(int lanes, float* out, const float* h, int M, int F);
void swiglu_backward_lanes(int lanes, float* dh, const float* dout, const float* h, int M, int F);

// The CUDA twins (model/ops/cuda/swiglu.cu), float only.
namespace cuda {
template <typename T>
void swiglu_forward(T* out, const T* h, int M, int F);
template <typename T>
void swiglu_backward(T* dh, const T* dout, const T* h, int M, int F);
}  // namespace cuda

}  // namespace lora
