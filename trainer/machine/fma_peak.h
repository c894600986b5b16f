// The fp32 FMA peak of one core of this machine, measured the way ../shared/anchors'
// sgemm_peak does: a register-only loop of independent fused multiply-adds.
#pragma once

namespace lora {

// GFLOP/s of one thread, best of a few ~50 ms trials (2 FLOP per lane per FMA).
double measure_fma_peak_gflops_per_core();

// GFLOP/s of `threads` threads running the same trials at once, summed: the peak of this
// rank's cores while they are all busy (SMT siblings, a shared FPU and a host's other guests
// all show up here, as they do in a training step). Call it on every rank at the same time
// for the job's peak.
double measure_fma_peak_gflops_all_threads(int threads);

}  // namespace lora
