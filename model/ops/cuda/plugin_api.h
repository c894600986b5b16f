// What the CUDA backend plugin (liblora_cuda.so, built from model/ops/cuda and
// comm/nccl_communicator) gives lora_dist, which loads it with dlopen only on ranks that run
// on a GPU (trainer/machine/compute_backend.cpp): linking cuBLAS and NCCL into every process would
// cost each CPU rank about 210 MiB of resident memory before it did anything.
// Host-side types only, so lora_dist includes it without the CUDA headers.
#pragma once
#include <mpi.h>

#include <memory>
#include <string>

#include "comm/communicator.h"
#include "comm/watchdog.h"
#include "model/compute_ops.h"

namespace lora {

struct CudaPlugin {
  int (*device_count)(std::string* why);  // 0, with the reason, where none is visible
  int (*local_rank_from_env)();
  int (*select_device)(int local_rank);  // makes (local_rank mod devices) current; returns it
  std::string (*device_description)();   // "NVIDIA H200, sm_90, 139.8 GiB"
  size_t (*device_bytes_in_use)();        // cudaMemGetInfo's total - free (model/ops/cuda/plugin.cpp)
  const ComputeOps<float>* ops;           // model/ops/cuda/compute_ops.cpp
  // NCCL over `world` with the tp x dp groups of MpiCommunicator, its collectives timed by `w`.
  std::unique_ptr<Communicator> (*make_nccl_communicator)(MPI_Comm world, int tp, int dp, Watchdog* w);
  // ncclCommAbort on every group of a communicator make_nccl_communicator returned: what the
  // watchdog calls before MPI_Abort, so no kernel spins on a peer that will never answer.
  void (*abort_nccl)(Communicator& nccl);
};

}  // namespace lora

// The plugin's one exported symbol.
extern "C" const lora::CudaPlugin* lora_cuda_plugin();
