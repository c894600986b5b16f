// One rank's shard of a frozen matrix stored in NF4 (model.dtype nf4, issue 24; the format is
// model/nf4.h): how its bytes are laid out, how a loader turns fp32 rows into them, and how a
// GEMM gets rows of it back in fp32.
//
// The quantization is bitsandbytes' of the whole matrix, whatever the layout: blocks of 64
// consecutive weights of the full [out, in] tensor, their absmax double-quantized over the
// whole tensor (offset = mean of every block's absmax, one fp32 scale per 256 blocks). A rank
// keeps the codes and absmax codes of its own blocks, every nested scale of the tensor (one
// float per 16384 weights) and, per local row, where its blocks sit in the whole tensor. So
// the dequantized weights, and the run, are the same at every tp, and equal to what a
// bitsandbytes "-bnb-4bit" folder of the same weights holds.
//
// Blocks must not straddle rows or ranks: every rank's rows hold a whole number of blocks
// (check_nf4_shape). Where a checkpoint stores separate matrices that the model fuses (Llama's
// q, k, v and gate, up), each is quantized on its own, as bitsandbytes did: a "segment" of the
// fused tensor's rows with its own offset and nested scales.
//
// Loading runs in two phases because the offset and nested scales depend on blocks that other
// TP ranks hold:
//   1. per rank, no communication: nf4_quantize_local turns the rank's rows (fp32) into codes
//      and keeps each block's fp32 absmax (1/16 of the rows' fp32 bytes);
//   2. after every rank has loaded (GptModel::finish_nf4), the TP group gathers the absmax of
//      each matrix and nf4_finish_local double-quantizes them, each rank writing its own part.
// A pre-quantized folder fills the bytes directly (io/hf_bnb_weights.cpp) and skips both.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace lora {

struct TensorSpec;

// Where each part of one NF4 shard lies, in bytes from the shard's first byte. A pure function
// of the TensorSpec (nf4_shard_layout), so plan counts exactly what a rank allocates.
struct Nf4ShardLayout {
  int rows = 0, cols = 0;   // the local [rows x cols]; cols is a multiple of 64
  int blocks_per_row = 0;   // cols / 64
  int n_nested = 0;         // nested scales of every segment of the whole tensor, concatenated
  size_t codes = 0;         // rows * cols / 2 packed codes, local row-major, first element high nibble
  size_t map = 0;           // 256 floats: the dynamic map the absmax codes index
  size_t nested = 0;        // n_nested floats
  size_t row_table = 0;     // rows Nf4Row
  size_t absmax = 0;        // rows * blocks_per_row absmax codes, local order
  size_t bytes = 0;         // the whole shard, a multiple of 64
};

// Where a local row's blocks sit: its first block's index in its segment, that segment's
// first nested scale in the concatenated array, and the segment's offset.
struct Nf4Row {
  uint32_t first_block = 0;
  uint32_t first_group = 0;
  float offset = 0.0f;
};

constexpr int kNf4Blocksize = 64;

// Throws std::invalid_argument naming the tensor unless each of its rank's rows is a whole
// number of 64-weight blocks (the full and the local column counts divide by 64).
void check_nf4_shape(const TensorSpec& s);
// The layout of tensor s's shard (checked by check_nf4_shape).
Nf4ShardLayout nf4_shard_layout(const TensorSpec& s);
// The layout of a shard of local [rows x cols] whose tensor has n_nested nested scales in all:
// the one formula, which the memory estimate counts with too (sizes in 64 bits).
Nf4ShardLayout nf4_shard_layout(uint64_t rows, uint64_t cols, uint64_t n_nested);
// Nested scales of a segment of `weights` weights: one per 256 blocks of 64.
uint64_t nf4_nested_scales(uint64_t weights);

// A separately quantized part of a tensor (its quant_segments, or the whole tensor): its full
// rows, and where its nested scales start among the tensor's.
struct Nf4Segment {
  int first_row = 0, rows = 0;
  uint32_t first_group = 0, groups = 0;
};
std::vector<Nf4Segment> nf4_segments(const TensorSpec& s);

// Phase 1: the rank's rows of s in fp32 (local [rows x cols]) become packed codes in `shard`
// and the row table; `absmax` gets one fp32 per local block (local order). Throws
// std::invalid_argument naming the tensor and element at a NaN or infinity.
void nf4_quantize_local(const TensorSpec& s, int tp_rank, const float* local, uint8_t* shard, float* absmax);

// Phase 2: `all_absmax` holds every TP rank's phase-1 absmax, rank after rank (tp * local
// blocks). Writes this rank's absmax codes, the nested scales, the offsets and the map.
void nf4_finish_local(const TensorSpec& s, int tp, int tp_rank, const float* all_absmax, uint8_t* shard);

// The row table alone (a pre-quantized reader fills codes, absmax, nested and map itself):
// first_block and first_group of each local row; offsets[k] is segment k's offset.
void nf4_write_row_table(const TensorSpec& s, int tp_rank, const std::vector<float>& offsets, uint8_t* shard);

// Rows [r0, r1) of the shard dequantized into out[(r1 - r0) x cols]: what a GEMM tile reads.
// AVX-512 or AVX2 where this CPU has it (chosen at run time), else scalar; the same values.
template <typename T>
void nf4_dequantize_rows(const uint8_t* shard, const Nf4ShardLayout& L, int r0, int r1, T* out);
// The vector unit nf4_dequantize_rows<float> uses on this CPU: "avx512", "avx2" or "scalar".
const char* nf4_dequantize_kernel();
// Every unit this CPU can run, widest first ("avx512", "avx2", "scalar"), and rows dequantized
// with one of them: the tests compare each with the scalar loop on any CPU.
std::vector<std::string> nf4_dequantize_units();
void nf4_dequantize_rows_with(const std::string& unit, const uint8_t* shard, const Nf4ShardLayout& L, int r0, int r1,
                              float* out);

// Phase-1 state of a rank's NF4 matrices between the loader and GptModel::finish_nf4.
struct Nf4Staging {
  uint8_t* bytes = nullptr;  // the model's NF4 buffer
  int tp_rank = 0;
  std::vector<std::pair<std::string, std::vector<float>>> absmax;  // per staged tensor, in load order
  // Phase 1 for tensor s from its local fp32 rows.
  void quantize(const TensorSpec& s, const float* local);
};

}  // namespace lora
