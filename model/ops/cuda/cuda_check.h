// Every CUDA runtime and cuBLAS call goes through one of these checks: a failure throws
// CudaError naming the call, the file and the line (issue 14), never a silent error code.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <stdexcept>
#include <string>

namespace lora::cuda {

struct CudaError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

inline std::string call_site(const char* call, const char* file, int line) {
  return std::string(call) + " at " + file + ":" + std::to_string(line);
}

inline void check(cudaError_t e, const char* call, const char* file, int line) {
  if (e != cudaSuccess)
    throw CudaError("CUDA error " + std::string(cudaGetErrorName(e)) + " (" + cudaGetErrorString(e) + ") in " +
                    call_site(call, file, line));
}

inline void check(cublasStatus_t s, const char* call, const char* file, int line) {
  if (s != CUBLAS_STATUS_SUCCESS)
    throw CudaError("cuBLAS error " + std::string(cublasGetStatusName(s)) + " (" + cublasGetStatusString(s) + ") in " +
                    call_site(call, file, line));
}

}  // namespace lora::cuda

#define LORA_CUDA_CHECK(call) ::lora::cuda::check((call), #call, __FILE__, __LINE__)
// After a kernel launch: launch errors (bad configuration) are reported by cudaGetLastError.
#define LORA_CUDA_CHECK_LAUNCH(what) ::lora::cuda::check(cudaGetLastError(), what, __FILE__, __LINE__)
