// The pieces of gradient clipping that touch every gradient element (torch's
// clip_grad_norm_): a sum of squares in double, and a scaling. The trainer adds the sums of
// the tensors and all-reduces them over the TP group (trainer/train/grad_sync.h).
#pragma once
#include <cstddef>

namespace lora {

// sum over i of x[i]^2, accumulated in double.
double sum_of_squares(const float* x, size_t n);

// x[i] *= c.
void scale_in_place(float* x, size_t n, float c);

// The CUDA twins (model/ops/cuda/grad_norm.cu): device pointers; the sum returns to the host.
namespace cuda {
double sum_of_squares(const float* x, size_t n);
void scale_in_place(float* x, size_t n, float c);
}  // namespace cuda

}  // namespace lora
