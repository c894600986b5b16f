// A frozen linear layer y = x W^T + b, W stored [N x K] (out x in).
// Its backward gives only the input gradient: the base weights are frozen, so no
// weight-gradient GEMM is ever run for them (the point of LoRA's cost model).
#pragma once

namespace lora {

// y[M x N] = x[M x K] W^T (+ bias[N] when bias is not null).
template <typename T>
void linear_forward(T* y, const T* x, const T* w, const T* bias, int M, int K, int N);

// dx[M x K] = dy[M x N] W, or += when accumulate.
template <typename T>
void linear_backward_input(T* dx, const T* dy, const T* w, int M, int K, int N, bool accumulate);

// y[M x N] += bias[N]; for row-parallel layers, whose bias is added once after the reduction.
template <typename T>
void add_bias(T* y, const T* bias, int M, int N);

}  // namespace lora
