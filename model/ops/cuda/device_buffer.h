// An owned array in device memory, moved to and from host vectors with the compute stream
// (synchronised on the way back, so the host sees every op issued before).
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <utility>
#include <vector>

#include "model/ops/cuda/cuda_check.h"
#include "model/ops/cuda/device.h"

namespace lora::cuda {

template <typename T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t n) : n_(n) {
    if (n) LORA_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&p_), n * sizeof(T)));
  }
  explicit DeviceBuffer(const std::vector<T>& host) : DeviceBuffer(host.size()) { upload(host); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept : p_(std::exchange(o.p_, nullptr)), n_(std::exchange(o.n_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    std::swap(p_, o.p_);
    std::swap(n_, o.n_);
    return *this;
  }
  ~DeviceBuffer() {
    if (p_) cudaFree(p_);  // no throw from a destructor; a failed free leaks, nothing worse
  }

  T* data() { return p_; }
  const T* data() const { return p_; }
  size_t size() const { return n_; }

  void upload(const std::vector<T>& host) {
    if (host.size() != n_) throw CudaError("DeviceBuffer::upload: " + std::to_string(host.size()) +
                                           " elements into a buffer of " + std::to_string(n_));
    LORA_CUDA_CHECK(cudaMemcpyAsync(p_, host.data(), n_ * sizeof(T), cudaMemcpyHostToDevice, compute_stream()));
  }
  std::vector<T> download() const {
    std::vector<T> host(n_);
    LORA_CUDA_CHECK(cudaMemcpyAsync(host.data(), p_, n_ * sizeof(T), cudaMemcpyDeviceToHost, compute_stream()));
    synchronize();
    return host;
  }

 private:
  T* p_ = nullptr;
  size_t n_ = 0;
};

}  // namespace lora::cuda
