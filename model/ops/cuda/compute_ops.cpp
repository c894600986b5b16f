// The CUDA backend's table (model/compute_ops.h), the twin of model/ops/cpu/compute_ops.cpp:
// the functions of model/ops/cuda/*.cu, in device memory on the compute stream.
#include "model/compute_ops.h"

#include <cuda_runtime_api.h>

#include "model/ops/cuda/cuda_check.h"
#include "model/ops/cuda/device.h"

namespace lora::cuda {

namespace {
void* device_allocate(size_t bytes) {
  void* p = nullptr;
  LORA_CUDA_CHECK(cudaMalloc(&p, bytes));
  LORA_CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, compute_stream()));
  return p;
}
void device_release(void* p) { cudaFree(p); }  // no throw from a destructor; a failed free leaks
void host_to_device(void* dst, const void* src, size_t bytes) {
  LORA_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, compute_stream()));
  synchronize();  // the host buffer may change as soon as this returns
}
void device_to_host(void* dst, const void* src, size_t bytes) {
  LORA_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, compute_stream()));
  synchronize();
}
void device_zero(void* p, size_t bytes) { LORA_CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, compute_stream())); }
}  // namespace

const DeviceMemory& device_memory() {
  static const DeviceMemory memory{"cuda", false, device_allocate, device_release, host_to_device, device_to_host,
                                   device_zero};
  return memory;
}

const ComputeOps<float>& compute_ops() {
  static const ComputeOps<float> ops{
      "cuda", &device_memory(), synchronize,
      layernorm_forward<float>, layernorm_backward<float>, layernorm_backward_params<float>,
      linear_forward<float>, linear_backward_input<float>, linear_backward_weight<float>, add_bias<float>,
      lora_forward<float>, lora_down_forward<float>, lora_backward<float>,
      dropout_forward<float>, dropout_backward<float>,
      attention_forward<float>, attention_backward<float>, attention_forward_cached<float>,
      gelu_forward<float>, gelu_backward<float>, residual_forward<float>,
      embedding_forward<float>, add_positions<float>, embedding_backward<float>, positions_backward<float>,
      vocab_logits_max<float>, vocab_sumexp_and_target<float>, vocab_cross_entropy_backward<float>,
  };
  return ops;
}

}  // namespace lora::cuda
