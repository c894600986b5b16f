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
  static const ComputeOps<float> ops{"cuda", &device_memory(), synchronize, LORA_COMPUTE_OPS_OF(::lora::cuda, float)};
  return ops;
}

}  // namespace lora::cuda
