// The process's CUDA device and what every op shares on it: one compute stream, one cuBLAS
// handle bound to that stream, and growable scratch buffers (the bf16 copies of GEMM inputs).
// The device is chosen from the node-local rank, so N ranks on a node of N GPUs take one each.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <string>

namespace lora::cuda {

// Visible CUDA devices; 0 with `why` set (no driver, no device, ...) where there are none.
int device_count(std::string* why = nullptr);

// The node-local rank from the launcher's environment: OMPI_COMM_WORLD_LOCAL_RANK (Open MPI),
// SLURM_LOCALID (srun), MPI_LOCALRANKID (MPICH); 0 when none is set.
int local_rank_from_env();

// Makes device (local_rank mod device_count) current for this process and returns its id.
// Throws CudaError when no device is visible.
int select_device(int local_rank);

// "NVIDIA H200, sm_90, 139.8 GiB" for the current device.
std::string device_description();

// The stream every op of this process runs on, and the cuBLAS handle bound to it.
cudaStream_t compute_stream();
cublasHandle_t cublas();

// Blocks until every op issued so far has finished; a failed kernel reports here.
void synchronize();

// A device buffer of at least `bytes` for transient use inside one op (slot 0 and 1 may be
// used at once); grown, never shrunk. Not thread-safe: one host thread drives the device.
void* scratch(size_t bytes, int slot);

}  // namespace lora::cuda
