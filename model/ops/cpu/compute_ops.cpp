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

template <typename T>
ComputeOps<T> make_cpu_ops() {
  return ComputeOps<T>{
      "cpu", &host_memory(), nothing_to_wait_for,
      layernorm_forward<T>, layernorm_backward<T>, layernorm_backward_params<T>,
      linear_forward<T>, linear_backward_input<T>, linear_backward_weight<T>, add_bias<T>,
      lora_forward<T>, lora_down_forward<T>, lora_backward<T>,
      dropout_forward<T>, dropout_backward<T>,
      attention_forward<T>, attention_backward<T>, attention_forward_cached<T>,
      gelu_forward<T>, gelu_backward<T>, residual_forward<T>,
      embedding_forward<T>, add_positions<T>, embedding_backward<T>, positions_backward<T>,
      vocab_logits_max<T>, vocab_sumexp_and_target<T>, vocab_cross_entropy_backward<T>,
  };
}
}  // namespace

const DeviceMemory& host_memory() {
  static const DeviceMemory memory{"host", true, host_allocate, host_release, host_copy, host_copy, host_zero};
  return memory;
}

template <typename T>
const ComputeOps<T>& cpu_ops() {
  static const ComputeOps<T> ops = make_cpu_ops<T>();
  return ops;
}
template const ComputeOps<float>& cpu_ops<float>();
template const ComputeOps<double>& cpu_ops<double>();

}  // namespace lora
