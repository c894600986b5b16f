// A device preset resolved for a run: a GPU preset's published figures, or the `cpu` preset
// measured on this machine (its FMA peak, memory, the process's runtime baseline).
#pragma once
#include <string>

#include "trainer/devices/device_spec.h"

namespace lora {

// A preset by name; `cpu` measures this machine (FMA peak, ~0.3 s; the process's runtime
// after warming the libraries with `threads` threads on GEMMs of `rows` rows, a micro-batch's
// tokens) for a run of `ranks` ranks. Throws ConfigError naming the preset and the valid ones
// for an unknown name.
DeviceSpec device_preset(const std::string& name, int threads, int ranks, bool bf16_model, int rows);

// The `cpu` preset. Without `measure_rates` only its memory figures are measured (no FMA peak,
// no 64 MiB copy test): what `bench` uses to print the plan's peak RSS beside its own, since
// a bigger test buffer would raise the very high-water mark it is compared with.
DeviceSpec cpu_device(int threads, int ranks, bool bf16_model, int rows, bool measure_rates);

}  // namespace lora
