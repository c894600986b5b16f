// LayerNorm over the last dimension; gain and bias frozen with LoRA, trained in full fine-tuning.
#pragma once

namespace lora {

// out = (x - mean) * rstd * w + b per row; mean and rstd [M] are kept for backward.
template <typename T>
void layernorm_forward(T* out, T* mean, T* rstd, const T* x, const T* w, const T* b, int M, int C, float eps);

// dx += d(out)/dx^T dout. Accumulates, because x is the residual stream.
template <typename T>
void layernorm_backward(T* dx, const T* dout, const T* x, const T* mean, const T* rstd, const T* w, int M, int C);

// dw[C] += sum over rows of dout * xhat, db[C] += sum over rows of dout (full fine-tuning).
template <typename T>
void layernorm_backward_params(T* dw, T* db, const T* dout, const T* x, const T* mean, const T* rstd, int M, int C);

// The CUDA twin (model/ops/cuda/layernorm.cu): the same signatures over device pointers,
// float only; the CPU functions above are the reference it is tested against.
namespace cuda {
template <typename T>
void layernorm_forward(T* out, T* mean, T* rstd, const T* x, const T* w, const T* b, int M, int C, float eps);
template <typename T>
void layernorm_backward(T* dx, const T* dout, const T* x, const T* mean, const T* rstd, const T* w, int M, int C);
template <typename T>
void layernorm_backward_params(T* dw, T* db, const T* dout, const T* x, const T* mean, const T* rstd, int M, int C);
}  // namespace cuda

}  // namespace lora
