#include "trainer/machine/compute_backend.h"

#include <dlfcn.h>
#include <omp.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>

#include "comm/host_staged_communicator.h"
#include "model/ops/cuda/plugin_api.h"
#include "model/ops/cpu/frozen_gemm.h"
#include "trainer/machine/memory_check.h"

namespace lora {

namespace {
// GPUs the NVIDIA driver sees, asked of the driver library itself (dlopen of libcuda.so.1,
// cuInit, cuDeviceGetCount), so a machine without one never loads the plugin.
int visible_cuda_devices(std::string* why) {
  void* driver = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL);
  if (!driver) {
    *why = "no NVIDIA driver: " + std::string(dlerror());
    return 0;
  }
  using InitFn = int (*)(unsigned);
  using CountFn = int (*)(int*);
  auto init = reinterpret_cast<InitFn>(dlsym(driver, "cuInit"));
  auto count = reinterpret_cast<CountFn>(dlsym(driver, "cuDeviceGetCount"));
  int n = 0, rc = 0;
  if (!init || !count) {
    *why = "libcuda.so.1 lacks cuInit/cuDeviceGetCount";
  } else if ((rc = init(0)) != 0 || (rc = count(&n)) != 0) {
    *why = "the NVIDIA driver reports CUresult " + std::to_string(rc);  // 100: no device
    n = 0;
  } else if (n == 0) {
    *why = "the NVIDIA driver sees no device";
  }
  return n;
}

// liblora_cuda.so: $LORA_CUDA_PLUGIN, else beside the running executable.
std::string plugin_path() {
  if (const char* p = std::getenv("LORA_CUDA_PLUGIN"); p && *p) return p;
  char exe[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) return "liblora_cuda.so";
  std::string dir(exe, static_cast<size_t>(n));
  return dir.substr(0, dir.rfind('/') + 1) + "liblora_cuda.so";
}

const CudaPlugin* load_plugin(std::string* why) {
  const std::string path = plugin_path();
  void* lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);  // kept loaded for the process's life
  if (!lib) {
    *why = "the CUDA backend " + path + " does not load (built without nvcc?): " + dlerror();
    return nullptr;
  }
  using EntryFn = const CudaPlugin* (*)();
  auto entry = reinterpret_cast<EntryFn>(dlsym(lib, "lora_cuda_plugin"));
  if (!entry) {
    *why = path + " lacks lora_cuda_plugin()";
    return nullptr;
  }
  return entry();
}

// This rank's usable plugin, or null with the reason.
const CudaPlugin* find_cuda(std::string* why) {
  if (visible_cuda_devices(why) == 0) return nullptr;
  const CudaPlugin* cuda = load_plugin(why);
  if (cuda && cuda->device_count(why) == 0) return nullptr;
  return cuda;
}
}  // namespace

ComputeBackend::~ComputeBackend() = default;

ComputeBackend ComputeBackend::cpu(const std::string& why) {
  ComputeBackend b;
  b.line_ = "backend: cpu, " + std::to_string(omp_get_max_threads()) + " thread(s) per rank (" + why + ")";
  return b;
}

std::string ComputeBackend::frozen_gemm_kernel(DType dtype) const {
  if (!cuda_) return lora::frozen_gemm_kernel(dtype);
  if (dtype == DType::NF4) return "NF4 dequantized to bf16 per block of rows + cuBLAS cublasGemmEx, bf16 x bf16 with fp32 sums";
  return dtype == DType::BF16 ? "cuBLAS cublasGemmEx, bf16 x bf16 with fp32 sums" : "cuBLAS cublasSgemm, fp32 (no TF32)";
}

size_t ComputeBackend::device_bytes_in_use() const { return cuda_ ? cuda_->device_bytes_in_use() : 0; }

void ComputeBackend::abort_collectives() {
  if (cuda_ && device_comm_) cuda_->abort_nccl(*device_comm_);
}

ComputeBackend open_compute_backend(const DeviceConfig& device, Communicator& run, MPI_Comm world,
                                    Watchdog* watchdog) {
  ComputeBackend b;
  std::string why = "CUDA not asked for";
  const CudaPlugin* cuda = device.backend == "cpu" ? nullptr : find_cuda(&why);
  // One backend for the whole job: a rank without a GPU makes every rank compute on the CPU
  // under auto, and fails the job under cuda.
  float have[2] = {cuda ? 1.0f : 0.0f, cuda ? 0.0f : 1.0f};  // max of "has one", max of "lacks one"
  run.all_reduce_max(have, 2, Group::World);
  const bool everywhere = have[1] == 0;
  if (device.backend == "cuda" && !cuda)
    throw ConfigError("device.backend: cuda, but rank " + std::to_string(run.rank(Group::World)) +
                      " cannot use a GPU: " + why + " (device.backend: auto falls back to the CPU)");
  if (device.backend == "cuda" && !everywhere)
    throw ConfigError("device.backend: cuda, but another rank of the job cannot use a GPU (its own error says why)");
  if (!cuda || !everywhere) {
    if (cuda) why = "another rank of the job has no usable GPU";
    return ComputeBackend::cpu("device.backend: " + device.backend + "; " + why);
  }
  const int local = cuda->local_rank_from_env();
  const int id = cuda->select_device(local);
  b.cuda_ = cuda;
  b.ops_ = cuda->ops;
  // NCCL needs a GPU per rank. Under device.comm: auto, a node with more ranks than GPUs
  // (anywhere in the job) makes the model's collectives host-staged MPI instead.
  float crowded = ranks_on_this_node() > cuda->device_count(nullptr) ? 1.0f : 0.0f;
  run.all_reduce_max(&crowded, 1, Group::World);
  const bool nccl = device.comm == "nccl" || (device.comm == "auto" && crowded == 0);
  if (nccl) b.device_comm_ = cuda->make_nccl_communicator(world, run.size(Group::TP), run.size(Group::DP), watchdog);
  else b.device_comm_ = std::make_unique<HostStagedCommunicator>(run, *cuda->ops->memory);
  b.line_ = "backend: cuda, device " + std::to_string(id) + " (" + cuda->device_description() + ") for node-local rank " +
            std::to_string(local) + "; model collectives over " +
            (nccl ? "NCCL" : "MPI, staged through host memory") +
            (!nccl && device.comm == "auto" ? ", as a node holds more ranks than GPUs" : "") +
            " (device.backend: " + device.backend +
            ", device.comm: " + device.comm + ")";
  return b;
}

}  // namespace lora
