// A frozen linear layer y = x W^T + b, W stored [N x K] (out x in), in the model's type or
// in bf16 (model.dtype, DESIGN §7): the weight is a WeightView, one signature for both.
// With LoRA its backward gives only the input gradient: the base weights are frozen, so no
// weight-gradient GEMM is run for them (the point of LoRA's cost model); full fine-tuning
// adds linear_backward_weight.
#pragma once
#include <algorithm>

#include "model/dtype.h"

namespace lora {

// Rows of a bf16 or NF4 weight [N x K] widened or dequantized at once, by either backend (and
// counted by plan): 4 Mi weights, 16 MiB of fp32 (a whole block matrix of GPT-2 124M, a tenth of
// its LM head), at least 64 rows. Smaller blocks measured slower: more, thinner GEMMs.
inline int frozen_gemm_block_rows(int K) { return std::max(64, (4 << 20) / std::max(K, 1)); }

template <typename T>
struct NonDeduced { using type = T; };  // T comes from the activations; a T* converts to the view
template <typename T>
using WeightArg = typename NonDeduced<WeightView<T>>::type;

// y[M x N] = x[M x K] W^T (+ bias[N] when bias is not null).
template <typename T>
void linear_forward(T* y, const T* x, WeightArg<T> w, const T* bias, int M, int K, int N);

// dx[M x K] = dy[M x N] W, or += when accumulate.
template <typename T>
void linear_backward_input(T* dx, const T* dy, WeightArg<T> w, int M, int K, int N, bool accumulate);

// dW[N x K] += dy^T x and, when db is not null, db[N] += the column sums of dy: the weight
// gradient LoRA never needs and full fine-tuning (lora.enabled: false) needs for every layer.
// W must be trainable, so it is in the model's type (full fine-tuning keeps fp32 weights).
template <typename T>
void linear_backward_weight(T* dW, T* db, const T* dy, const T* x, int M, int K, int N);

// y[M x N] += bias[N]; for row-parallel layers, whose bias is added once after the reduction.
template <typename T>
void add_bias(T* y, const T* bias, int M, int N);

// The CUDA twin (model/ops/cuda/linear.cu) (cuBLAS; a bf16 weight meets the bf16-rounded input in cublasGemmEx, fp32 sums): the same signatures over device pointers,
// float only; the CPU functions above are the reference it is tested against.
namespace cuda {
template <typename T>
void linear_forward(T* y, const T* x, WeightArg<T> w, const T* bias, int M, int K, int N);
template <typename T>
void linear_backward_input(T* dx, const T* dy, WeightArg<T> w, int M, int K, int N, bool accumulate);
template <typename T>
void linear_backward_weight(T* dW, T* db, const T* dy, const T* x, int M, int K, int N);
template <typename T>
void add_bias(T* y, const T* bias, int M, int N);
}  // namespace cuda

}  // namespace lora
