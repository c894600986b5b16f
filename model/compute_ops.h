// The operations a GptModel computes with, as one table: the CPU backend's (model/ops/cpu/
// compute_ops.cpp) or the CUDA backend's (model/ops/cuda/compute_ops.cpp, inside the plugin
// liblora_cuda.so that lora_dist loads only when a run uses a GPU; trainer/machine/compute_backend.h).
// Each entry has exactly the type of the op it points to (model/ops/*.h declares the CPU
// function and its CUDA twin with one signature), so the model's forward and backward are one
// code for both backends; its buffers are in `memory`, host or device.
#pragma once
#include <cstddef>
#include <utility>

#include "comm/device_memory.h"
#include "model/ops/attention.h"
#include "model/ops/cross_entropy.h"
#include "model/ops/dropout.h"
#include "model/ops/embedding.h"
#include "model/ops/gelu.h"
#include "model/ops/layernorm.h"
#include "model/ops/linear.h"
#include "model/ops/lora.h"
#include "model/ops/residual.h"
#include "model/ops/rmsnorm.h"
#include "model/ops/rope.h"
#include "model/ops/swiglu.h"

namespace lora {

template <typename T>
struct ComputeOps {
  const char* name;  // "cpu" or "cuda"
  const DeviceMemory* memory;
  // Blocks until every op issued so far has finished (the CUDA stream; nothing on the CPU).
  void (*synchronize)();

  decltype(&layernorm_forward<T>) layernorm_forward;
  decltype(&layernorm_backward<T>) layernorm_backward;
  decltype(&layernorm_backward_params<T>) layernorm_backward_params;
  decltype(&rmsnorm_forward<T>) rmsnorm_forward;
  decltype(&rmsnorm_backward<T>) rmsnorm_backward;
  decltype(&rmsnorm_backward_weight<T>) rmsnorm_backward_weight;
  decltype(&linear_forward<T>) linear_forward;
  decltype(&linear_backward_input<T>) linear_backward_input;
  decltype(&linear_backward_weight<T>) linear_backward_weight;
  decltype(&add_bias<T>) add_bias;
  decltype(&lora_forward<T>) lora_forward;
  decltype(&lora_down_forward<T>) lora_down_forward;
  decltype(&lora_backward<T>) lora_backward;
  decltype(&dropout_forward<T>) dropout_forward;
  decltype(&dropout_backward<T>) dropout_backward;
  decltype(&attention_forward<T>) attention_forward;
  decltype(&attention_backward<T>) attention_backward;
  decltype(&attention_forward_cached<T>) attention_forward_cached;
  decltype(&gelu_forward<T>) gelu_forward;
  decltype(&gelu_backward<T>) gelu_backward;
  decltype(&swiglu_forward<T>) swiglu_forward;
  decltype(&swiglu_backward<T>) swiglu_backward;
  decltype(&rope_forward<T>) rope_forward;
  decltype(&rope_backward<T>) rope_backward;
  decltype(&residual_forward<T>) residual_forward;
  decltype(&embedding_forward<T>) embedding_forward;
  decltype(&add_positions<T>) add_positions;
  decltype(&embedding_backward<T>) embedding_backward;
  decltype(&positions_backward<T>) positions_backward;
  decltype(&vocab_logits_max<T>) vocab_logits_max;
  decltype(&vocab_sumexp_and_target<T>) vocab_sumexp_and_target;
  decltype(&vocab_cross_entropy_backward<T>) vocab_cross_entropy_backward;
};

// A backend's op entries for ComputeOps<T>'s initialiser, in its order: the functions of
// namespace NS (::lora for the CPU, ::lora::cuda for CUDA). One list, so the twin tables
// cannot drift apart.
#define LORA_COMPUTE_OPS_OF(NS, T)                                                                        \
  NS::layernorm_forward<T>, NS::layernorm_backward<T>, NS::layernorm_backward_params<T>,                 \
      NS::rmsnorm_forward<T>, NS::rmsnorm_backward<T>, NS::rmsnorm_backward_weight<T>,                     \
      NS::linear_forward<T>, NS::linear_backward_input<T>, NS::linear_backward_weight<T>, NS::add_bias<T>, \
      NS::lora_forward<T>, NS::lora_down_forward<T>, NS::lora_backward<T>, NS::dropout_forward<T>,         \
      NS::dropout_backward<T>, NS::attention_forward<T>, NS::attention_backward<T>,                        \
      NS::attention_forward_cached<T>, NS::gelu_forward<T>, NS::gelu_backward<T>, NS::swiglu_forward<T>,   \
      NS::swiglu_backward<T>, NS::rope_forward<T>, NS::rope_backward<T>, NS::residual_forward<T>,           \
      NS::embedding_forward<T>, NS::add_positions<T>, NS::embedding_backward<T>, NS::positions_backward<T>, \
      NS::vocab_logits_max<T>, NS::vocab_sumexp_and_target<T>, NS::vocab_cross_entropy_backward<T>

// The CPU backend, for float and double (the gradient checks run in double).
template <typename T>
const ComputeOps<T>& cpu_ops();

// n elements of E in a backend's memory, zero-filled; moves, never copies.
template <typename E>
class ComputeBuffer {
 public:
  ComputeBuffer() = default;
  ComputeBuffer(const DeviceMemory& memory, size_t n)
      : memory_(&memory), n_(n), p_(n ? static_cast<E*>(memory.allocate(n * sizeof(E))) : nullptr) {}
  ComputeBuffer(ComputeBuffer&& o) noexcept
      : memory_(o.memory_), n_(std::exchange(o.n_, 0)), p_(std::exchange(o.p_, nullptr)) {}
  ComputeBuffer& operator=(ComputeBuffer&& o) noexcept {
    std::swap(memory_, o.memory_);
    std::swap(n_, o.n_);
    std::swap(p_, o.p_);
    return *this;
  }
  ComputeBuffer(const ComputeBuffer&) = delete;
  ComputeBuffer& operator=(const ComputeBuffer&) = delete;
  ~ComputeBuffer() {
    if (p_) memory_->release(p_);
  }

  E* data() { return p_; }
  const E* data() const { return p_; }
  size_t size() const { return n_; }
  void zero(size_t n) { if (n) memory_->zero(p_, n * sizeof(E)); }
  void upload(const E* host, size_t n) { if (n) memory_->to_device(p_, host, n * sizeof(E)); }
  void download(E* host, size_t n) const { if (n) memory_->to_host(host, p_, n * sizeof(E)); }

 private:
  const DeviceMemory* memory_ = nullptr;
  size_t n_ = 0;
  E* p_ = nullptr;
};

}  // namespace lora
