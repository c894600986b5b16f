// The CUDA twin of nf4_dequantize_rows (model/nf4_weight.cpp): rows [r0, r1) of an NF4 shard
// dequantized on the device, into bf16 (the GEMM's input type on a GPU: model.dtype nf4
// computes as QLoRA does there, bf16 operands with fp32 sums) or fp32 (tests). Each thread
// takes one byte, two weights; its block's absmax is map[code] * scale rounded, then + offset,
// as the CPU and bitsandbytes compute it (no fused multiply-add).
#include <cuda_bf16.h>

#include "model/nf4.h"
#include "model/ops/cuda/cuda_check.h"
#include "model/ops/cuda/device.h"
#include "model/ops/cuda/launch.h"
#include "model/ops/cuda/nf4_dequantize.h"

namespace lora::cuda {

namespace {

__constant__ float kCode[16];

template <typename Out>
__device__ Out from_float(float v);
template <>
__device__ float from_float<float>(float v) { return v; }
template <>
__device__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

template <typename Out>
__global__ void dequantize_kernel(Out* out, const uint8_t* shard, Nf4ShardLayout L, int r0, int r1) {
  const size_t half_cols = size_t(L.cols) / 2, n = size_t(r1 - r0) * half_cols;
  const Nf4Row* rows = reinterpret_cast<const Nf4Row*>(shard + L.row_table);
  const float* map = reinterpret_cast<const float*>(shard + L.map);
  const float* nested = reinterpret_cast<const float*>(shard + L.nested);
  for (size_t idx = blockIdx.x * size_t(blockDim.x) + threadIdx.x; idx < n; idx += size_t(gridDim.x) * blockDim.x) {
    const int lr = r0 + int(idx / half_cols);
    const int byte = int(idx % half_cols), j = byte * 2 / kNf4Blocksize;
    const Nf4Row row = rows[lr];
    const uint32_t b = row.first_block + j;
    const uint8_t code = shard[L.absmax + size_t(lr) * L.blocks_per_row + j];
    const float amax = __fadd_rn(__fmul_rn(map[code], nested[row.first_group + b / nf4::kNestedBlocksize]), row.offset);
    const uint8_t two = shard[L.codes + size_t(lr) * half_cols + byte];
    out[2 * idx] = from_float<Out>(__fmul_rn(kCode[two >> 4], amax));
    out[2 * idx + 1] = from_float<Out>(__fmul_rn(kCode[two & 0x0F], amax));
  }
}

template <typename Out>
void dequantize(Out* out, const uint8_t* shard, const Nf4ShardLayout& L, int r0, int r1) {
  static bool table_set = false;  // one host thread drives the device
  if (!table_set) {
    LORA_CUDA_CHECK(cudaMemcpyToSymbol(kCode, nf4::kNf4Code.data(), sizeof(float) * 16));
    table_set = true;
  }
  const size_t n = size_t(r1 - r0) * L.cols / 2;
  if (n == 0) return;
  dequantize_kernel<<<blocks_for(n), kThreads, 0, compute_stream()>>>(out, shard, L, r0, r1);
  LORA_CUDA_CHECK_LAUNCH("nf4 dequantize_kernel");
}

}  // namespace

void* nf4_dequantize_rows_bf16(void* dst, const uint8_t* shard, const Nf4ShardLayout& L, int r0, int r1) {
  dequantize(static_cast<__nv_bfloat16*>(dst), shard, L, r0, r1);
  return dst;
}

void nf4_dequantize_rows_f32(float* dst, const uint8_t* shard, const Nf4ShardLayout& L, int r0, int r1) {
  dequantize(dst, shard, L, r0, r1);
}

}  // namespace lora::cuda
