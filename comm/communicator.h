// The one interface every collective goes through (DESIGN §7). The model never calls
// MPI or NCCL directly: it names a group and the communicator moves the bytes and
// counts them, so the trainer can report exactly what crossed ranks and why.
#pragma once
#include <cstddef>
#include <cstdint>

namespace lora {

// World = every rank; TP = the `tp` consecutive ranks sharing one model replica;
// DP = the ranks holding the same TP shard in different replicas (DESIGN §1).
enum class Group : int { World = 0, TP = 1, DP = 2 };
constexpr int kNumGroups = 3;
const char* group_name(Group g);

// Accelerator backends pass their stream here; the MPI backend runs on the host
// and ignores it. Kept in every signature so NCCL slots in without touching callers.
using Stream = void*;

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int rank(Group g) const = 0;
  virtual int size(Group g) const = 0;

  virtual void all_reduce_sum(float* buf, size_t n, Group g, Stream s = nullptr) = 0;
  virtual void all_reduce_sum(double* buf, size_t n, Group g, Stream s = nullptr) = 0;
  virtual void all_reduce_max(float* buf, size_t n, Group g, Stream s = nullptr) = 0;
  virtual void all_reduce_max(double* buf, size_t n, Group g, Stream s = nullptr) = 0;
  virtual void broadcast(void* buf, size_t bytes, int root, Group g, Stream s = nullptr) = 0;
  // recv holds size(g) * n elements, rank i's block at i * n.
  virtual void all_gather(const float* send, size_t n, float* recv, Group g, Stream s = nullptr) = 0;
  virtual void all_gather(const double* send, size_t n, double* recv, Group g, Stream s = nullptr) = 0;
  virtual void barrier(Group g) = 0;

  // Payload bytes this rank has put into collectives of group g since construction
  // (n * sizeof(element) per call; a group of one rank moves nothing and counts nothing).
  uint64_t bytes(Group g) const { return bytes_[static_cast<int>(g)]; }

 protected:
  void count(Group g, uint64_t nbytes) {
    if (size(g) > 1) bytes_[static_cast<int>(g)] += nbytes;
  }

 private:
  uint64_t bytes_[kNumGroups] = {0, 0, 0};
};

}  // namespace lora
