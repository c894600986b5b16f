// The CPU backend's table (model/compute_ops.h): the functions of model/ops/cpu/*.cpp, in
// host memory.
#include "model/compute_ops.h"

#include <cstring>
#include <new>

namespace lora {

namespace {
// operator new, as std::vector's: the memory tests count the model's allocations through it.
void* host_allocate(size_t bytes) {
  void* p = ::operator new(bytes);
  std::memset(p, 0, bytes);  // touched now, as std::vector's zeros were: peak RSS is what `plan` predicts
  return p;
}
void host_release(void* p) { ::operator delete(p); }
void host_copy(void* dst, const void* src, size_t bytes) { std::memcpy(dst, src, bytes); }
void host_zero(void* p, size_t bytes) { std::memset(p, 0, bytes); }
void nothing_to_wait_for() {}

}  // namespace

const DeviceMemory& host_memory() {
  static const DeviceMemory memory{"host", true, host_allocate, host_release, host_copy, host_copy, host_zero};
  return memory;
}

template <typename T>
const ComputeOps<T>& cpu_ops() {
  static const ComputeOps<T> ops{"cpu", &host_memory(), nothing_to_wait_for, LORA_COMPUTE_OPS_OF(::lora, T)};
  return ops;
}
template const ComputeOps<float>& cpu_ops<float>();
template const ComputeOps<double>& cpu_ops<double>();

}  // namespace lora
