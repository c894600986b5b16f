// Functions that the CPU code and the CUDA kernels share (the dropout mask, the Philox draw):
// one definition, compiled for both, so the two backends cannot drift apart.
#pragma once

#ifdef __CUDACC__
#define LORA_HOST_DEVICE __host__ __device__
#else
#define LORA_HOST_DEVICE
#endif
