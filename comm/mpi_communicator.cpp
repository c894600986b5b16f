#include "comm/mpi_communicator.h"

#include <climits>
#include <stdexcept>
#include <string>

namespace lora {

const char* group_name(Group g) {
  switch (g) {
    case Group::World: return "world";
    case Group::TP: return "tp";
    case Group::DP: return "dp";
  }
  return "?";
}

namespace {
void check(int rc, const char* what) {
  if (rc != MPI_SUCCESS) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    throw std::runtime_error(std::string(what) + ": " + std::string(msg, len));
  }
}
// MPI counts are int; the LoRA buffers are far below 2^31 elements, activations too.
int to_count(size_t n) {
  if (n > static_cast<size_t>(INT_MAX)) throw std::runtime_error("collective of more than INT_MAX elements");
  return static_cast<int>(n);
}
}  // namespace

MpiCommunicator::MpiCommunicator(MPI_Comm world, int tp, int dp) {
  int world_rank = 0, world_size = 0;
  MPI_Comm_rank(world, &world_rank);
  MPI_Comm_size(world, &world_size);
  if (world_size != tp * dp)
    throw std::runtime_error("world size " + std::to_string(world_size) + " != tp*dp = " +
                             std::to_string(tp) + "*" + std::to_string(dp));
  check(MPI_Comm_dup(world, &comms_[static_cast<int>(Group::World)]), "MPI_Comm_dup");
  // TP group: same dp_rank; ordered by tp_rank. DP group: same tp_rank; ordered by dp_rank.
  check(MPI_Comm_split(world, world_rank / tp, world_rank % tp, &comms_[static_cast<int>(Group::TP)]),
        "MPI_Comm_split(tp)");
  check(MPI_Comm_split(world, world_rank % tp, world_rank / tp, &comms_[static_cast<int>(Group::DP)]),
        "MPI_Comm_split(dp)");
  // "the dp group (world ranks 1, 3)": each group and its members, for the watchdog's messages.
  for (Group g : {Group::World, Group::TP, Group::DP}) {
    std::string peers;
    for (int r = 0; r < world_size; ++r) {
      const bool member = g == Group::World || (g == Group::TP ? r / tp == world_rank / tp : r % tp == world_rank % tp);
      if (member) peers += (peers.empty() ? "" : ", ") + std::to_string(r);
    }
    group_descriptions_[static_cast<int>(g)] = std::string("the ") + group_name(g) + " group (world ranks " + peers + ")";
  }
}

MpiCommunicator::~MpiCommunicator() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized) return;
  for (MPI_Comm& c : comms_) MPI_Comm_free(&c);
}

int MpiCommunicator::rank(Group g) const {
  int r = 0;
  MPI_Comm_rank(comm(g), &r);
  return r;
}

int MpiCommunicator::size(Group g) const {
  int s = 0;
  MPI_Comm_size(comm(g), &s);
  return s;
}

void MpiCommunicator::all_reduce(void* buf, size_t n, MPI_Datatype type, size_t elem, MPI_Op op, Group g) {
  if (size(g) == 1 || n == 0) return;
  Watchdog::Collective timed(watchdog_, op == MPI_SUM ? "all-reduce (sum)" : "all-reduce (max)", n * elem,
                             group_description(g));
  check(MPI_Allreduce(MPI_IN_PLACE, buf, to_count(n), type, op, comm(g)), "MPI_Allreduce");
  count(g, n * elem);
}

void MpiCommunicator::all_reduce_sum(float* buf, size_t n, Group g, Stream) {
  all_reduce(buf, n, MPI_FLOAT, sizeof(float), MPI_SUM, g);
}
void MpiCommunicator::all_reduce_sum(double* buf, size_t n, Group g, Stream) {
  all_reduce(buf, n, MPI_DOUBLE, sizeof(double), MPI_SUM, g);
}
void MpiCommunicator::all_reduce_max(float* buf, size_t n, Group g, Stream) {
  all_reduce(buf, n, MPI_FLOAT, sizeof(float), MPI_MAX, g);
}
void MpiCommunicator::all_reduce_max(double* buf, size_t n, Group g, Stream) {
  all_reduce(buf, n, MPI_DOUBLE, sizeof(double), MPI_MAX, g);
}

void MpiCommunicator::broadcast(void* buf, size_t bytes, int root, Group g, Stream) {
  if (size(g) == 1 || bytes == 0) return;
  Watchdog::Collective timed(watchdog_, "broadcast", bytes, group_description(g));
  check(MPI_Bcast(buf, to_count(bytes), MPI_BYTE, root, comm(g)), "MPI_Bcast");
  count(g, bytes);
}

void MpiCommunicator::all_gather(const void* send, size_t n, MPI_Datatype type, size_t elem, void* recv,
                                 Group g) {
  Watchdog::Collective timed(watchdog_, "all-gather", n * elem, group_description(g));
  check(MPI_Allgather(send, to_count(n), type, recv, to_count(n), type, comm(g)), "MPI_Allgather");
  count(g, n * elem * static_cast<size_t>(size(g)));
}
void MpiCommunicator::all_gather(const float* send, size_t n, float* recv, Group g, Stream) {
  all_gather(send, n, MPI_FLOAT, sizeof(float), recv, g);
}
void MpiCommunicator::all_gather(const double* send, size_t n, double* recv, Group g, Stream) {
  all_gather(send, n, MPI_DOUBLE, sizeof(double), recv, g);
}

void MpiCommunicator::barrier(Group g) {
  Watchdog::Collective timed(watchdog_, "barrier", 0, group_description(g));
  check(MPI_Barrier(comm(g)), "MPI_Barrier");
}

}  // namespace lora
