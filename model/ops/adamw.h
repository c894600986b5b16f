// AdamW (Loshchilov & Hutter), exactly as torch.optim.AdamW computes it: decoupled weight
// decay p *= 1 - lr*wd, then the bias-corrected Adam step.
#pragma once
#include <cstddef>

namespace lora {

// t is the 1-based step count used for bias correction.
template <typename T>
void adamw_update(T* params, const T* grads, T* m, T* v, size_t n, float lr, float beta1, float beta2,
                  float eps, float weight_decay, long t);

// The CUDA twin (model/ops/cuda/adamw.cu): the same signatures over device pointers,
// float only; the CPU functions above are the reference it is tested against.
namespace cuda {
template <typename T>
void adamw_update(T* params, const T* grads, T* m, T* v, size_t n, float lr, float beta1, float beta2,
                  float eps, float weight_decay, long t);
}  // namespace cuda

}  // namespace lora
