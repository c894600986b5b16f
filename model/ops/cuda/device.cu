#include "model/ops/cuda/device.h"

#include <cstdio>
#include <cstdlib>
#include <string>

#include "model/ops/cuda/cuda_check.h"

namespace lora::cuda {

namespace {
struct DeviceState {
  cudaStream_t stream = nullptr;
  cublasHandle_t handle = nullptr;
  void* scratch[2] = {nullptr, nullptr};
  size_t scratch_bytes[2] = {0, 0};
};
DeviceState& state() {
  static DeviceState s;
  return s;
}
}  // namespace

int device_count(std::string* why) {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    if (why) *why = std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e);
    cudaGetLastError();  // so a later LORA_CUDA_CHECK_LAUNCH does not report this one
    return 0;
  }
  if (n == 0 && why) *why = "cudaGetDeviceCount found 0 devices";
  return n;
}

int local_rank_from_env() {
  for (const char* name : {"OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "MPI_LOCALRANKID"})
    if (const char* v = std::getenv(name)) return std::atoi(v);
  return 0;
}

int select_device(int local_rank) {
  std::string why;
  const int n = device_count(&why);
  if (n == 0) throw CudaError("no CUDA device visible (" + why + ")");
  const int id = local_rank % n;
  LORA_CUDA_CHECK(cudaSetDevice(id));
  return id;
}

std::string device_description() {
  int id = 0;
  LORA_CUDA_CHECK(cudaGetDevice(&id));
  cudaDeviceProp p{};
  LORA_CUDA_CHECK(cudaGetDeviceProperties(&p, id));
  char mem[32];
  std::snprintf(mem, sizeof mem, "%.1f GiB", p.totalGlobalMem / 1073741824.0);
  return std::string(p.name) + ", sm_" + std::to_string(p.major) + std::to_string(p.minor) + ", " + mem;
}

cudaStream_t compute_stream() {
  DeviceState& s = state();
  if (!s.stream) LORA_CUDA_CHECK(cudaStreamCreate(&s.stream));
  return s.stream;
}

cublasHandle_t cublas() {
  DeviceState& s = state();
  if (!s.handle) {
    LORA_CUDA_CHECK(cublasCreate(&s.handle));
    LORA_CUDA_CHECK(cublasSetStream(s.handle, compute_stream()));
    // fp32 GEMMs stay fp32 (no TF32): the CPU backend is the reference they are held to.
    LORA_CUDA_CHECK(cublasSetMathMode(s.handle, CUBLAS_DEFAULT_MATH));
  }
  return s.handle;
}

void synchronize() { LORA_CUDA_CHECK(cudaStreamSynchronize(compute_stream())); }

void* scratch(size_t bytes, int slot) {
  DeviceState& s = state();
  if (bytes > s.scratch_bytes[slot]) {
    synchronize();  // an op still reading the old buffer must finish first
    if (s.scratch[slot]) LORA_CUDA_CHECK(cudaFree(s.scratch[slot]));
    LORA_CUDA_CHECK(cudaMalloc(&s.scratch[slot], bytes));
    s.scratch_bytes[slot] = bytes;
  }
  return s.scratch[slot];
}

}  // namespace lora::cuda
