// The whole logits of a vocabulary-parallel model, for the drivers that compare them with
// PyTorch (tests/hf/hf_logits_driver.cpp, tests/llama/llama_reference_driver.cpp).
#pragma once
#include <mpi.h>

#include <vector>

namespace lora::test {

// [rows x V] on rank 0 of MPI_COMM_WORLD (whose ranks are the TP ranks), from every rank's
// slice [rows x vl]: rank r holds columns [r vl, (r + 1) vl), those beyond V padding. Empty on
// the other ranks.
inline std::vector<float> gather_full_logits(const std::vector<float>& local, int rows, int vl, int V) {
  int rank = 0, tp = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &tp);
  std::vector<float> gathered(rank == 0 ? local.size() * tp : 0), full;
  MPI_Gather(local.data(), static_cast<int>(local.size()), MPI_FLOAT, gathered.data(), static_cast<int>(local.size()),
             MPI_FLOAT, 0, MPI_COMM_WORLD);
  if (rank != 0) return full;
  full.resize(static_cast<size_t>(rows) * V);
  for (int r = 0; r < tp; ++r)
    for (int i = 0; i < rows; ++i)
      for (int c = 0; c < vl && r * vl + c < V; ++c)
        full[static_cast<size_t>(i) * V + r * vl + c] = gathered[(static_cast<size_t>(r) * rows + i) * vl + c];
  return full;
}

}  // namespace lora::test
