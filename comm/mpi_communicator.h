// Communicator over MPI: the three groups come from MPI_Comm_split of MPI_COMM_WORLD
// with rank r -> tp_rank = r % tp, dp_rank = r / tp (DESIGN §1).
#pragma once
#include <mpi.h>

#include <string>

#include "comm/communicator.h"
#include "comm/watchdog.h"

namespace lora {

class MpiCommunicator final : public Communicator {
 public:
  // Requires MPI to be initialised and world size == tp * dp (the caller checks and
  // reports that with the config's line, see trainer/main.cpp).
  MpiCommunicator(MPI_Comm world, int tp, int dp);
  ~MpiCommunicator() override;
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;

  int rank(Group g) const override;
  int size(Group g) const override;

  void all_reduce_sum(float* buf, size_t n, Group g, Stream s = nullptr) override;
  void all_reduce_sum(double* buf, size_t n, Group g, Stream s = nullptr) override;
  void all_reduce_max(float* buf, size_t n, Group g, Stream s = nullptr) override;
  void all_reduce_max(double* buf, size_t n, Group g, Stream s = nullptr) override;
  void broadcast(void* buf, size_t bytes, int root, Group g, Stream s = nullptr) override;
  void all_gather(const float* send, size_t n, float* recv, Group g, Stream s = nullptr) override;
  void all_gather(const double* send, size_t n, double* recv, Group g, Stream s = nullptr) override;
  void barrier(Group g) override;

  // Times every collective from now on (comm/watchdog.h); null turns it off.
  void set_watchdog(Watchdog* w) { watchdog_ = w; }

  // "the dp group (world ranks 1, 3)", for messages.
  const std::string& group_description(Group g) const { return group_descriptions_[static_cast<int>(g)]; }

 private:
  MPI_Comm comm(Group g) const { return comms_[static_cast<int>(g)]; }
  void all_reduce(void* buf, size_t n, MPI_Datatype type, size_t elem, MPI_Op op, Group g);
  void all_gather(const void* send, size_t n, MPI_Datatype type, size_t elem, void* recv, Group g);

  MPI_Comm comms_[kNumGroups];
  std::string group_descriptions_[kNumGroups];
  Watchdog* watchdog_ = nullptr;
};

}  // namespace lora
