// A communicator for buffers in device memory over one that only reaches host memory (issue
// 14, `parallel.comm: mpi` on the CUDA backend): each collective copies the buffer to the
// host, runs there, and copies the result back. Slower than NCCL, but it needs no GPU per
// rank, so a tp 2 layout runs on one GPU and checks the model's collectives against the CPU.
// Bytes are counted as the inner communicator counts them (payload, groups of one excluded).
#pragma once
#include <vector>

#include "comm/communicator.h"
#include "comm/device_memory.h"

namespace lora {

class HostStagedCommunicator final : public Communicator {
 public:
  HostStagedCommunicator(Communicator& host, const DeviceMemory& memory) : host_(host), memory_(memory) {}

  int rank(Group g) const override { return host_.rank(g); }
  int size(Group g) const override { return host_.size(g); }

  void all_reduce_sum(float* buf, size_t n, Group g, Stream s = nullptr) override;
  void all_reduce_sum(double* buf, size_t n, Group g, Stream s = nullptr) override;
  void all_reduce_max(float* buf, size_t n, Group g, Stream s = nullptr) override;
  void all_reduce_max(double* buf, size_t n, Group g, Stream s = nullptr) override;
  void broadcast(void* buf, size_t bytes, int root, Group g, Stream s = nullptr) override;
  void all_gather(const float* send, size_t n, float* recv, Group g, Stream s = nullptr) override;
  void all_gather(const double* send, size_t n, double* recv, Group g, Stream s = nullptr) override;
  void barrier(Group g) override { host_.barrier(g); }

 private:
  template <typename T, typename Collective>
  void staged(T* buf, size_t n, Group g, Collective run);
  template <typename T>
  void staged_gather(const T* send, size_t n, T* recv, Group g);

  Communicator& host_;
  const DeviceMemory& memory_;
  std::vector<char> send_, recv_;  // host staging, grown to the largest collective
};

}  // namespace lora
