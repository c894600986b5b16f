// RMSNorm over the last dimension, the Llama family's norm (Zhang & Sennrich 2019; Hugging
// Face's LlamaRMSNorm): out = x * rrms * w with rrms = 1 / sqrt(mean(x^2) + eps) per row. No
// mean is subtracted and there is no bias; the gain is frozen with LoRA, trained in full
// fine-tuning.
#pragma once

namespace lora {

// out = x * rrms * w per row; rrms [M] is kept for backward.
template <typename T>
void rmsnorm_forward(T* out, T* rrms, const T* x, const T* w, int M, int C, float eps);

// dx += d(out)/dx^T dout: dx = rrms * (g - x * rrms^2 * mean(g * x)) with g = dout * w.
// Accumulates, because x is the residual stream.
template <typename T>
void rmsnorm_backward(T* dx, const T* dout, const T* x, const T* rrms, const T* w, int M, int C);

// dw[C] += sum over rows of dout * x * rrms (full fine-tuning).
template <typename T>
void rmsnorm_backward_weight(T* dw, const T* dout, const T* x, const T* rrms, int M, int C);

// The CUDA twins (model/ops/cuda/rmsnorm.cu), float only.
namespace cuda {
template <typename T>
void rmsnorm_forward(T* out, T* rrms, const T* x, const T* w, int M, int C, float eps);
template <typename T>
void rmsnorm_backward(T* dx, const T* dout, const T* x, const T* rrms, const T* w, int M, int C);
template <typename T>
void rmsnorm_backward_weight(T* dw, const T* dout, const T* x, const T* rrms, int M, int C);
}  // namespace cuda

}  // namespace lora
