// LayerNorm over the last dimension with frozen gain and bias.
#pragma once

namespace lora {

// out = (x - mean) * rstd * w + b per row; mean and rstd [M] are kept for backward.
template <typename T>
void layernorm_forward(T* out, T* mean, T* rstd, const T* x, const T* w, const T* b, int M, int C, float eps);

// dx += d(out)/dx^T dout. Accumulates, because x is the residual stream.
template <typename T>
void layernorm_backward(T* dx, const T* dout, const T* x, const T* mean, const T* rstd, const T* w, int M, int C);

}  // namespace lora
