// Which backend a run computes on (device.backend: auto | cpu | cuda, issue 14) and the one
// line every run prints about it. The CUDA ops and the NCCL communicator exist and are tested
// op by op (model/ops/cuda, comm/nccl_communicator), but GptModel keeps its buffers in host
// memory, so today every run resolves to the CPU backend: `auto` says why (no device visible,
// or a device the model cannot use yet), and `cuda` is refused when the config is read.
#pragma once
#include <string>

namespace lora {

// "backend: cpu (...)" for rank 0 to print; `requested` is device.backend ("auto" or "cpu").
std::string backend_line(const std::string& requested);

}  // namespace lora
