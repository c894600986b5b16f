// 4-bit NormalFloat (NF4) with double-quantized block scales, as bitsandbytes stores a frozen
// weight for QLoRA (Dettmers et al. 2023; issue 24). Only the format: quantize, dequantize,
// byte counts. model/nf4_weight.h stores a rank's shard of a matrix in it (docs/nf4.md).
//
// The format, element by element (n elements, row-major, blocks of `blocksize`, default 64):
//   absmax[b]   = max |x| over block b (the last block may be shorter: n % blocksize elements)
//   code[i]     = the NF4 code nearest x[i] / absmax[b], by the midpoints of the table (kNf4Code)
//   packed[i/2] = code[2j] << 4 | code[2j+1]: the first element in the high nibble
// Double quantization of the block scales (one fp32 absmax per 64 weights is 0.5 bit a weight):
//   offset      = mean of absmax[] (fp32)
//   absmax[] - offset, in blocks of 256, each with its own fp32 scale (max |absmax - offset|),
//   quantized to 8 bits with bitsandbytes' signed dynamic map (dynamic_map_signed()).
// Dequantized: absmax'[b] = (map[absmax_code[b]] * scale[b / 256]) + offset, x'[i] =
// kNf4Code[code[i]] * absmax'[b], each product and sum rounded to fp32 on its own, as
// bitsandbytes' kernels compute them. Cost: 4 + 8/64 + 32/(64*256) = 4.127 bits a weight.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace lora::nf4 {

constexpr int kDefaultBlocksize = 64;
constexpr int kNestedBlocksize = 256;  // blocks of absmax values per fp32 nested scale

// The 16 NF4 values, bitsandbytes' table (functional.py get_4bit_type("nf4"), the CUDA
// kernels' dDequantizeNF4): quantiles of N(0, 1) scaled to [-1, 1], with an exact 0 at 7.
inline constexpr std::array<float, 16> kNf4Code = {
    -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
    -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
    0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
    0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f};

// The NF4 code of a value already divided by its block's absmax (bitsandbytes' dQuantizeNF4).
uint8_t quantize_nf4_value(float scaled);

// bitsandbytes' create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8): 256
// sorted values in [-0.99297, 1], dense near 0 (one decade per exponent step).
const std::array<float, 256>& dynamic_map_signed();

// The 8-bit code of a value already divided by its block's absmax (bitsandbytes' dQuantize,
// not stochastic): a binary search of `map`, then the nearer of the neighbours by midpoint.
uint8_t quantize_dynamic_value(const std::array<float, 256>& map, float scaled);

// A quantized tensor (bitsandbytes' QuantState with compress_statistics=True).
struct Nf4Tensor {
  std::vector<int64_t> shape;         // e.g. [out, in]; elements in row-major order
  int blocksize = kDefaultBlocksize;  // weights per absmax
  std::vector<uint8_t> codes;         // packed, (n + 1) / 2 bytes; an odd n pads the last low nibble
  std::vector<uint8_t> absmax_codes;  // one per block: 8-bit code of absmax - offset
  std::vector<float> nested_scales;   // one per 256 blocks: fp32 absmax of (absmax - offset)
  float offset = 0.0f;                // mean of the blocks' absmax

  int64_t numel() const;
  int64_t num_blocks() const { return static_cast<int64_t>(absmax_codes.size()); }
  // Bytes held: codes, absmax codes, nested scales and offset.
  size_t bytes() const;
};

// Bytes of an n-element tensor in NF4 with double quantization (what Nf4Tensor::bytes()
// returns): ceil(n/2) + ceil(n/blocksize) + 4 * ceil(blocks/256) + 4.
size_t nf4_bytes(int64_t n, int blocksize = kDefaultBlocksize);

// First stage alone (bitsandbytes' quantize_4bit without compress_statistics): `packed` gets
// (n + 1) / 2 bytes, `absmax` one fp32 per block. Throws std::invalid_argument naming the
// first non-finite element's index.
void quantize_blocks(const float* x, int64_t n, int blocksize, uint8_t* packed, float* absmax);

// Double quantization of `blocks` absmax values: offset, 8-bit codes, one scale per 256.
void quantize_absmax(const float* absmax, int64_t blocks, uint8_t* codes, std::vector<float>& nested_scales,
                     float& offset);

// The whole format: both stages. `shape`'s product is the element count.
Nf4Tensor quantize(const float* x, const std::vector<int64_t>& shape, int blocksize = kDefaultBlocksize);

// Block b's dequantized absmax (map[code] * scale + offset).
float block_absmax(const Nf4Tensor& t, int64_t block);
// The same from its parts: map_value * scale rounded to fp32, then + offset (two roundings, as
// bitsandbytes computes it; never one fused multiply-add).
float absmax_value(float map_value, float scale, float offset);

// Elements of block b (blocksize of them, fewer for a final partial block) into out.
void dequantize_block(const Nf4Tensor& t, int64_t block, float* out);

// The whole tensor in fp32, numel() elements.
std::vector<float> dequantize(const Nf4Tensor& t);

// Rows [r0, r1) of a 2-D [rows, cols] tensor into out ((r1 - r0) * cols floats, row-major):
// a GEMM tile's rows of the frozen weight, without dequantizing the rest. Rows need not start
// on a block boundary.
void dequantize_rows(const Nf4Tensor& t, int64_t r0, int64_t r1, float* out);

}  // namespace lora::nf4
