// Which backend a run computes on (device.backend: auto | cpu | cuda) and over what its
// model's collectives run (device.comm: auto | nccl | mpi), decided alike on every rank, and
// the one line rank 0 prints about it (issue 14; README "The GPU backend").
//   cpu:  the model computes in host memory; every collective is the run's MPI communicator.
//   cuda: the model computes on the GPU of its node-local rank through liblora_cuda.so, loaded
//         here with dlopen (never linked: cuBLAS alone costs a process ~210 MiB of RSS); its
//         collectives are NCCL (comm: nccl, the default) or MPI staged through host memory
//         (comm: mpi: several ranks may share one GPU). The trainer's own collectives (losses,
//         checkpoints) stay on the run's MPI communicator, over host memory.
// auto is cuda when every rank's node has a visible GPU and the plugin loads, cpu otherwise,
// saying why.
#pragma once
#include <mpi.h>

#include <memory>
#include <string>

#include "comm/communicator.h"
#include "comm/watchdog.h"
#include "model/compute_ops.h"
#include "model/dtype.h"
#include "trainer/config/config_loader.h"

namespace lora {

struct CudaPlugin;

class ComputeBackend {
 public:
  ComputeBackend() = default;  // the CPU backend
  // The CPU backend with its line: "backend: cpu, N thread(s) per rank (<why>)".
  static ComputeBackend cpu(const std::string& why);
  // A backend made by hand: `ops`, with the model's collectives over `device_comm` (tests
  // run the CPU's ops in memory of their own this way: the device path without a GPU).
  ComputeBackend(const ComputeOps<float>& ops, std::unique_ptr<Communicator> device_comm, std::string line)
      : ops_(&ops), device_comm_(std::move(device_comm)), line_(std::move(line)) {}
  ComputeBackend(ComputeBackend&&) = default;
  ComputeBackend& operator=(ComputeBackend&&) = default;
  ~ComputeBackend();

  const ComputeOps<float>& ops() const { return *ops_; }
  bool on_gpu() const { return cuda_ != nullptr; }
  // The communicator of the model's collectives: NCCL or host-staged MPI on the GPU, `run` on the CPU.
  Communicator& model_comm(Communicator& run) { return device_comm_ ? *device_comm_ : run; }
  const std::string& line() const { return line_; }  // "backend: ..."
  // What multiplies the frozen weights, for the run's first line and bench.
  std::string frozen_gemm_kernel(DType dtype) const;
  // Device memory in use (cudaMemGetInfo), 0 on the CPU.
  size_t device_bytes_in_use() const;
  // ncclCommAbort on the NCCL groups, if any: for the watchdog, before MPI_Abort.
  void abort_collectives();

 private:
  friend ComputeBackend open_compute_backend(const DeviceConfig&, Communicator&, MPI_Comm, Watchdog*);
  const ComputeOps<float>* ops_ = &cpu_ops<float>();
  const CudaPlugin* cuda_ = nullptr;
  std::unique_ptr<Communicator> device_comm_;
  std::string line_;
};

// Collective over `run` (every rank decides alike). Throws ConfigError (exit 2) when
// device.backend: cuda cannot be had (no driver, no device, no plugin), naming why.
ComputeBackend open_compute_backend(const DeviceConfig& device, Communicator& run, MPI_Comm world, Watchdog* watchdog);

}  // namespace lora
