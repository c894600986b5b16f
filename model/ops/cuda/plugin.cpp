// The entry point of liblora_cuda.so (model/ops/cuda/plugin_api.h).
#include "model/ops/cuda/plugin_api.h"

#include <cuda_runtime_api.h>

#include "comm/nccl_communicator.h"
#include "model/ops/cuda/cuda_check.h"
#include "model/ops/cuda/device.h"

namespace lora::cuda {
const ComputeOps<float>& compute_ops();  // model/ops/cuda/compute_ops.cpp
}

namespace {

size_t device_bytes_in_use() {
  // The whole device's, so this process's where it has the GPU to itself (one rank per GPU).
  // The model allocates every buffer up front and frees none until it ends, so at the end of
  // a run this is the run's peak, but for cuBLAS's workspace and the ops' scratch growth.
  size_t free = 0, total = 0;
  LORA_CUDA_CHECK(cudaMemGetInfo(&free, &total));
  return total - free;
}

std::unique_ptr<lora::Communicator> make_nccl_communicator(MPI_Comm world, int tp, int dp, lora::Watchdog* w) {
  auto nccl = std::make_unique<lora::NcclCommunicator>(world, tp, dp);
  nccl->set_watchdog(w);
  return nccl;
}

void abort_nccl(lora::Communicator& c) {
  if (auto* nccl = dynamic_cast<lora::NcclCommunicator*>(&c)) nccl->abort_all();
}

}  // namespace

extern "C" const lora::CudaPlugin* lora_cuda_plugin() {
  static const lora::CudaPlugin plugin{
      lora::cuda::device_count,         lora::cuda::local_rank_from_env, lora::cuda::select_device,
      lora::cuda::device_description,   device_bytes_in_use,               &lora::cuda::compute_ops(),
      make_nccl_communicator,           abort_nccl,
  };
  return &plugin;
}
