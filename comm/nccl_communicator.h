// Communicator over NCCL (DESIGN §7, issue 14): the same three groups as MpiCommunicator (tp
// consecutive ranks share a replica), each an NCCL communicator bootstrapped over MPI: the
// group's rank 0 calls ncclGetUniqueId and broadcasts it on the group's MPI communicator,
// then every member calls ncclCommInitRank. Buffers are device pointers; collectives run on
// the caller's stream (the compute stream when none is given), so they are ordered with the
// kernels around them.
//
// Every group, even of one rank, has an NCCL communicator and every call goes through it (a
// one-GPU machine tests NCCL that way); bytes are counted only where the group has peers.
//
// Each collective waits for its completion while a Watchdog::Collective times it, polling
// ncclCommGetAsyncError: a dead peer or a broken link surfaces either as an NCCL error
// (thrown, naming the group) or as a collective that never ends, which the watchdog ends: its
// abort function is to call abort_all() (ncclCommAbort on every communicator), then MPI_Abort,
// exit 5 (comm/watchdog.h). lora_dist does not construct this communicator yet (README, "The
// GPU backend"). Built only where CUDA is (LORA_HAVE_CUDA); the device must be chosen first
// (cuda::select_device).
#pragma once
#include <mpi.h>
#include <nccl.h>

#include <atomic>
#include <string>

#include "comm/communicator.h"
#include "comm/mpi_communicator.h"
#include "comm/watchdog.h"

namespace lora {

class NcclCommunicator final : public Communicator {
 public:
  // Collective over `world` (size tp * dp). Throws cuda::CudaError naming the NCCL call when
  // NCCL refuses (e.g. two ranks on one GPU) or no device is current.
  NcclCommunicator(MPI_Comm world, int tp, int dp);
  ~NcclCommunicator() override;
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  int rank(Group g) const override { return mpi_.rank(g); }
  int size(Group g) const override { return mpi_.size(g); }

  void all_reduce_sum(float* buf, size_t n, Group g, Stream s = nullptr) override;
  void all_reduce_sum(double* buf, size_t n, Group g, Stream s = nullptr) override;
  void all_reduce_max(float* buf, size_t n, Group g, Stream s = nullptr) override;
  void all_reduce_max(double* buf, size_t n, Group g, Stream s = nullptr) override;
  void broadcast(void* buf, size_t bytes, int root, Group g, Stream s = nullptr) override;
  void all_gather(const float* send, size_t n, float* recv, Group g, Stream s = nullptr) override;
  void all_gather(const double* send, size_t n, double* recv, Group g, Stream s = nullptr) override;
  void barrier(Group g) override;

  void set_watchdog(Watchdog* w) {
    watchdog_ = w;
    mpi_.set_watchdog(w);
  }
  // ncclCommAbort on every group: what the watchdog's abort calls before MPI_Abort, so no
  // kernel is left spinning on a peer that will never answer. Safe from another thread.
  void abort_all();

 private:
  void all_reduce(void* buf, size_t n, ncclDataType_t type, size_t elem, ncclRedOp_t op, Group g, Stream s);
  void all_gather(const void* send, size_t n, ncclDataType_t type, size_t elem, void* recv, Group g, Stream s);
  // Waits for the work just enqueued on `s` under the watchdog, checking NCCL's async error.
  void wait(const char* op, size_t bytes, Group g, Stream s);
  ncclComm_t live(Group g) const;  // group g's communicator; parks the caller once aborted


  MpiCommunicator mpi_;  // the same groups over MPI: the bootstrap, barriers and group names
  ncclComm_t nccl_[kNumGroups] = {nullptr, nullptr, nullptr};
  Watchdog* watchdog_ = nullptr;
  std::atomic<bool> aborted_{false};  // set by abort_all (the watchdog's thread)
};

}  // namespace lora
