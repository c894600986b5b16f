#include "comm/nccl_communicator.h"

#include <cuda_runtime_api.h>

#include <chrono>
#include <string>
#include <thread>

#include "model/ops/cuda/cuda_check.h"
#include "model/ops/cuda/device.h"

#define LORA_NCCL_CHECK(call, comm) ::lora::check_nccl((call), (comm), #call, __FILE__, __LINE__)

namespace lora {

namespace {
void check_nccl(ncclResult_t r, ncclComm_t comm, const char* call, const char* file, int line) {
  if (r == ncclSuccess || r == ncclInProgress) return;
  std::string what = "NCCL error " + std::to_string(int(r)) + " (" + ncclGetErrorString(r) + ") in " +
                     cuda::call_site(call, file, line);
  if (const char* last = ncclGetLastError(comm); last && *last) what += ": " + std::string(last);
  throw cuda::CudaError(what);
}

cudaStream_t stream_of(Stream s) { return s ? static_cast<cudaStream_t>(s) : cuda::compute_stream(); }
}  // namespace

NcclCommunicator::NcclCommunicator(MPI_Comm world, int tp, int dp) : mpi_(world, tp, dp) {
  int device = 0;
  LORA_CUDA_CHECK(cudaGetDevice(&device));  // no device: the error names the call
  for (Group g : {Group::World, Group::TP, Group::DP}) {
    // A group of one rank gets a communicator too: it moves and counts nothing, but its calls
    // run through NCCL, which is how NCCL is tested on a machine with one GPU.
    ncclUniqueId id;
    if (rank(g) == 0) LORA_NCCL_CHECK(ncclGetUniqueId(&id), nullptr);
    mpi_.broadcast(&id, sizeof id, 0, g);
    ncclComm_t& comm = nccl_[static_cast<int>(g)];
    LORA_NCCL_CHECK(ncclCommInitRank(&comm, size(g), id, rank(g)), comm);
  }
}

NcclCommunicator::~NcclCommunicator() {
  if (aborted_) return;  // ncclCommAbort freed them
  for (ncclComm_t& c : nccl_)
    if (c) ncclCommDestroy(c);
}

void NcclCommunicator::abort_all() {
  aborted_ = true;  // first: the main thread must not touch a communicator being freed
  for (ncclComm_t& c : nccl_)
    if (c) ncclCommAbort(c);
}

ncclComm_t NcclCommunicator::live(Group g) const {
  // After abort_all the communicators are gone and the watchdog is ending the process
  // (MPI_Abort, or _exit after its grace): wait for that rather than use a freed one.
  while (aborted_) std::this_thread::sleep_for(std::chrono::seconds(1));
  return nccl_[static_cast<int>(g)];
}

void NcclCommunicator::wait(const char* op, size_t bytes, Group g, Stream s) {
  Watchdog::Collective timed(watchdog_, op, bytes, mpi_.group_description(g));
  const cudaStream_t stream = stream_of(s);
  for (;;) {
    ncclComm_t comm = live(g);
    const cudaError_t e = cudaStreamQuery(stream);
    if (e == cudaSuccess) return;
    if (e != cudaErrorNotReady) LORA_CUDA_CHECK(e);
    ncclResult_t async = ncclSuccess;
    LORA_NCCL_CHECK(ncclCommGetAsyncError(comm, &async), comm);
    LORA_NCCL_CHECK(async, comm);
    std::this_thread::yield();
  }
}

void NcclCommunicator::all_reduce(void* buf, size_t n, ncclDataType_t type, size_t elem, ncclRedOp_t op, Group g,
                                  Stream s) {
  if (n == 0) return;
  ncclComm_t comm = live(g);
  LORA_NCCL_CHECK(ncclAllReduce(buf, buf, n, type, op, comm, stream_of(s)), comm);
  wait(op == ncclSum ? "all-reduce (sum)" : "all-reduce (max)", n * elem, g, s);
  count(g, n * elem);  // counts nothing for a group of one, as the MPI communicator
}

void NcclCommunicator::all_reduce_sum(float* buf, size_t n, Group g, Stream s) {
  all_reduce(buf, n, ncclFloat32, sizeof(float), ncclSum, g, s);
}
void NcclCommunicator::all_reduce_sum(double* buf, size_t n, Group g, Stream s) {
  all_reduce(buf, n, ncclFloat64, sizeof(double), ncclSum, g, s);
}
void NcclCommunicator::all_reduce_max(float* buf, size_t n, Group g, Stream s) {
  all_reduce(buf, n, ncclFloat32, sizeof(float), ncclMax, g, s);
}
void NcclCommunicator::all_reduce_max(double* buf, size_t n, Group g, Stream s) {
  all_reduce(buf, n, ncclFloat64, sizeof(double), ncclMax, g, s);
}

void NcclCommunicator::broadcast(void* buf, size_t bytes, int root, Group g, Stream s) {
  if (bytes == 0) return;
  ncclComm_t comm = live(g);
  LORA_NCCL_CHECK(ncclBroadcast(buf, buf, bytes, ncclUint8, root, comm, stream_of(s)), comm);
  wait("broadcast", bytes, g, s);
  count(g, bytes);
}

void NcclCommunicator::all_gather(const void* send, size_t n, ncclDataType_t type, size_t elem, void* recv, Group g,
                                  Stream s) {
  ncclComm_t comm = live(g);
  LORA_NCCL_CHECK(ncclAllGather(send, recv, n, type, comm, stream_of(s)), comm);
  wait("all-gather", n * elem, g, s);
  count(g, n * elem * static_cast<size_t>(size(g)));
}
void NcclCommunicator::all_gather(const float* send, size_t n, float* recv, Group g, Stream s) {
  all_gather(send, n, ncclFloat32, sizeof(float), recv, g, s);
}
void NcclCommunicator::all_gather(const double* send, size_t n, double* recv, Group g, Stream s) {
  all_gather(send, n, ncclFloat64, sizeof(double), recv, g, s);
}

// Host-side: everything this rank enqueued has finished, then the group meets over MPI.
void NcclCommunicator::barrier(Group g) {
  cuda::synchronize();
  mpi_.barrier(g);
}

}  // namespace lora
