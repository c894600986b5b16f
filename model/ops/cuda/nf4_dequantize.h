// NF4 shards dequantized on the device (the twin of nf4_dequantize_rows in model/nf4_weight.h,
// which the CUDA tests compare it with): rows [r0, r1) of the shard at device pointer `shard`,
// laid out as L says, into dst[(r1 - r0) x L.cols].
#pragma once
#include <cstdint>

#include "model/nf4_weight.h"

namespace lora::cuda {

// bf16 out, for the frozen GEMMs (the values rounded to nearest even). Returns dst.
void* nf4_dequantize_rows_bf16(void* dst, const uint8_t* shard, const Nf4ShardLayout& L, int r0, int r1);
// fp32 out, the exact values (tests).
void nf4_dequantize_rows_f32(float* dst, const uint8_t* shard, const Nf4ShardLayout& L, int r0, int r1);

}  // namespace lora::cuda
