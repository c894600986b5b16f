// The fp32 FMA peak of one core of this machine, measured the way ../shared/anchors'
// sgemm_peak does: a register-only loop of independent fused multiply-adds.
#pragma once

namespace lora {

// GFLOP/s of one thread, best of a few ~50 ms trials (2 FLOP per lane per FMA).
double measure_fma_peak_gflops_per_core();

}  // namespace lora
