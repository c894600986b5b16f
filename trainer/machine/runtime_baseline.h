// What this machine's CPU device is, measured: the memory a rank's process holds before its
// model (the `cpu` preset's runtime baseline), the CPU's bf16 units, its cores, and the rate
// at which ranks on the node move bytes through shared memory.
#pragma once
#include <cstdint>

namespace lora {

// A "Name:  N kB" field of /proc/self/status ("VmRSS:", "RssFile:", ...), in bytes; 0 where
// /proc or the field is missing.
uint64_t proc_status_bytes(const char* field);

// Resident set size of this process now (VmRSS), in bytes; 0 where /proc is missing.
uint64_t current_rss_bytes();

// The peak RSS of this process once every library a training rank uses is warm: MPI
// initialised (the caller's job), OpenBLAS's per-thread GEMM buffers and OpenMP's threads
// started at `threads` threads, oneDNN's fp32 matmul (and, for a bf16 model, its bf16 probe)
// created and run on GEMMs of `rows` rows (a micro-batch's tokens), less the warm-up's own
// matrices: the runtime a rank carries whatever its model, with the libraries' per-call
// buffers at their largest.
uint64_t measure_runtime_baseline(int threads, bool bf16_model, int rows);

// Peak RSS of this process so far (VmHWM), in bytes.
uint64_t peak_rss_bytes();

// /proc/cpuinfo lists avx512_bf16 or amx_bf16: the CPU has bf16 dot-product units.
bool cpu_has_bf16_units();

// Cores this process may run on (sched_getaffinity).
int usable_cores();

// Bytes per second one thread copies between two buffers larger than the caches: the rate
// of an MPI message through shared memory on this node (best of a few 64 MiB copies).
double measure_copy_bytes_per_s();

}  // namespace lora
