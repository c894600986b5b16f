#include "trainer/backend.h"

#include <dlfcn.h>
#include <omp.h>

namespace lora {

namespace {
// GPUs the NVIDIA driver sees, asked of the driver library itself (dlopen of libcuda.so.1,
// cuInit, cuDeviceGetCount): no CUDA library is linked into lora_dist, because loading
// cuBLAS costs every rank about 210 MiB of resident memory before it does anything
// (measured: 27 -> 239 MiB peak RSS of a run that stops at its config).
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
}  // namespace

std::string backend_line(const std::string& requested) {
  std::string line = "backend: cpu, " + std::to_string(omp_get_max_threads()) +
                     " thread(s) per rank (device.backend: " + requested + "; ";
  std::string why;
  if (requested == "cpu")
    line += "CUDA not asked for";
  else if (const int n = visible_cuda_devices(&why); n == 0)
    line += "no CUDA device visible: " + why;
  else  // a GPU is there, but the model's buffers are host memory (trainer/backend.h)
    line += std::to_string(n) + " CUDA device(s) visible, but the model does not run on the CUDA backend yet";
  return line + ")";
}

}  // namespace lora
