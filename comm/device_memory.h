// How bytes move between host memory and the memory a compute backend works in (issue 14):
// host memory itself for the CPU backend, GPU memory for CUDA (model/ops/cuda/compute_ops.cpp).
// Named here, below the model, because the host-staged communicator needs it too.
#pragma once
#include <cstddef>

namespace lora {

struct DeviceMemory {
  const char* name;              // "host" or "cuda"
  bool is_host;                  // the backend computes in host memory: its buffers are host pointers
  void* (*allocate)(size_t bytes);  // zero-filled; throws when there is no room
  void (*release)(void* p);
  void (*to_device)(void* dst, const void* host_src, size_t bytes);
  void (*to_host)(void* host_dst, const void* src, size_t bytes);  // complete when it returns
  void (*zero)(void* p, size_t bytes);
};

// The CPU backend's: malloc, memcpy, memset (model/ops/cpu/compute_ops.cpp).
const DeviceMemory& host_memory();

}  // namespace lora
