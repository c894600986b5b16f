// Which process of a job prints a one-time note about an input (a conversion, ignored
// tensors): world rank 0, or the only process when MPI is not running.
#pragma once
#include <mpi.h>

namespace lora {

inline bool is_first_process() {
  int initialized = 0, finalized = 0, rank = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (initialized && !finalized) MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  return rank == 0;
}

}  // namespace lora
