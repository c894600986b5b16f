#include "model/nf4_weight.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "model/nf4.h"
#include "model/param_layout.h"

namespace lora {

namespace {

size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }

Nf4Row* row_table(uint8_t* shard, const Nf4ShardLayout& L) { return reinterpret_cast<Nf4Row*>(shard + L.row_table); }
const Nf4Row* row_table(const uint8_t* shard, const Nf4ShardLayout& L) {
  return reinterpret_cast<const Nf4Row*>(shard + L.row_table);
}

}  // namespace

uint64_t nf4_nested_scales(uint64_t weights) {
  return (weights / kNf4Blocksize + nf4::kNestedBlocksize - 1) / nf4::kNestedBlocksize;
}

std::vector<Nf4Segment> nf4_segments(const TensorSpec& s) {
  const std::vector<int> rows = s.quant_segments.empty() ? std::vector<int>{s.rows} : s.quant_segments;
  std::vector<Nf4Segment> segments;
  Nf4Segment next;
  for (const int r : rows) {
    next.rows = r;
    next.groups = static_cast<uint32_t>(nf4_nested_scales(static_cast<uint64_t>(r) * s.cols));
    segments.push_back(next);
    next.first_row += r;
    next.first_group += next.groups;
  }
  return segments;
}

void check_nf4_shape(const TensorSpec& s) {
  if (s.cols % kNf4Blocksize == 0 && s.local_cols % kNf4Blocksize == 0) return;
  throw std::invalid_argument("model.dtype nf4: tensor '" + s.name + "' has rows of " + std::to_string(s.cols) +
                              " weights, " + std::to_string(s.local_cols) +
                              " on each TP rank; NF4 needs each rank's rows to be whole blocks of 64 weights "
                              "(use model.dtype bf16, or a tp that keeps the rows a multiple of 64)");
}

Nf4ShardLayout nf4_shard_layout(uint64_t rows, uint64_t cols, uint64_t n_nested) {
  Nf4ShardLayout L;
  L.rows = static_cast<int>(rows);
  L.cols = static_cast<int>(cols);
  L.blocks_per_row = static_cast<int>(cols / kNf4Blocksize);
  L.n_nested = static_cast<int>(n_nested);
  size_t at = 0;
  L.codes = at;
  at += rows * cols / 2;  // a multiple of 32
  L.map = at;
  at += 256 * sizeof(float);
  L.nested = at;
  at += n_nested * sizeof(float);
  L.row_table = at;
  at += rows * sizeof(Nf4Row);
  L.absmax = at;
  at += rows * L.blocks_per_row;
  L.bytes = round_up(at, 64);  // the next shard starts on a cache line
  return L;
}

Nf4ShardLayout nf4_shard_layout(const TensorSpec& s) {
  check_nf4_shape(s);
  const Nf4Segment last = nf4_segments(s).back();
  return nf4_shard_layout(s.local_rows, s.local_cols, last.first_group + last.groups);
}

void nf4_write_row_table(const TensorSpec& s, int tp_rank, const std::vector<float>& offsets, uint8_t* shard) {
  const std::vector<Nf4Segment> segments = nf4_segments(s);
  const long long c0 = s.global_col(0, tp_rank);
  Nf4Row* rows = row_table(shard, s.nf4);
  for (int lr = 0; lr < s.nf4.rows; ++lr) {
    const int row = s.global_row(lr, tp_rank);
    size_t k = 0;  // the segment the row is in
    while (row >= segments[k].first_row + segments[k].rows) ++k;
    const long long element = static_cast<long long>(row - segments[k].first_row) * s.cols + c0;
    rows[lr].first_block = static_cast<uint32_t>(element / kNf4Blocksize);
    rows[lr].first_group = segments[k].first_group;
    rows[lr].offset = offsets.empty() ? 0.0f : offsets[k];
  }
}

void nf4_quantize_local(const TensorSpec& s, int tp_rank, const float* local, uint8_t* shard, float* absmax) {
  const Nf4ShardLayout& L = s.nf4;
  const size_t n = static_cast<size_t>(L.rows) * L.cols;
  for (size_t i = 0; i < n; ++i)
    if (!std::isfinite(local[i]))
      throw std::invalid_argument("tensor '" + s.name + "' holds a non-finite value at local row " +
                                  std::to_string(i / L.cols) + ", column " + std::to_string(i % L.cols) +
                                  "; NF4 cannot quantize it");
#pragma omp parallel for schedule(static)
  for (int lr = 0; lr < L.rows; ++lr)  // rows are whole blocks: each row is quantized on its own
    nf4::quantize_blocks(local + static_cast<size_t>(lr) * L.cols, L.cols, kNf4Blocksize,
                         shard + L.codes + static_cast<size_t>(lr) * L.cols / 2, absmax + static_cast<size_t>(lr) * L.blocks_per_row);
  nf4_write_row_table(s, tp_rank, {}, shard);
}

void nf4_finish_local(const TensorSpec& s, int tp, int tp_rank, const float* all_absmax, uint8_t* shard) {
  const Nf4ShardLayout& L = s.nf4;
  // Every block's absmax in the whole tensor's order, from each rank's rows.
  const size_t local_blocks = static_cast<size_t>(L.rows) * L.blocks_per_row;
  const size_t blocks_per_full_row = static_cast<size_t>(s.cols) / kNf4Blocksize;
  std::vector<float> whole(static_cast<size_t>(s.rows) * blocks_per_full_row, 0.0f);
  for (int r = 0; r < tp; ++r) {
    const float* from = all_absmax + r * local_blocks;
    const size_t first_col_block = static_cast<size_t>(s.global_col(0, r)) / kNf4Blocksize;
    for (int lr = 0; lr < L.rows; ++lr) {
      const int row = s.global_row(lr, r);
      std::memcpy(whole.data() + row * blocks_per_full_row + first_col_block, from + static_cast<size_t>(lr) * L.blocks_per_row,
                  L.blocks_per_row * sizeof(float));
    }
  }
  // Each segment double-quantized on its own, as bitsandbytes quantized it.
  std::vector<uint8_t> codes(whole.size());
  std::vector<float> offsets;
  for (const Nf4Segment& seg : nf4_segments(s)) {
    const size_t first_block = static_cast<size_t>(seg.first_row) * blocks_per_full_row;
    std::vector<float> scales;
    float offset = 0.0f;
    nf4::quantize_absmax(whole.data() + first_block, static_cast<int64_t>(seg.rows) * blocks_per_full_row,
                         codes.data() + first_block, scales, offset);
    std::memcpy(reinterpret_cast<float*>(shard + L.nested) + seg.first_group, scales.data(), scales.size() * sizeof(float));
    offsets.push_back(offset);
  }
  std::memcpy(shard + L.map, nf4::dynamic_map_signed().data(), 256 * sizeof(float));
  nf4_write_row_table(s, tp_rank, offsets, shard);
  const size_t first_col_block = static_cast<size_t>(s.global_col(0, tp_rank)) / kNf4Blocksize;
  for (int lr = 0; lr < L.rows; ++lr)
    std::memcpy(shard + L.absmax + static_cast<size_t>(lr) * L.blocks_per_row,
                codes.data() + s.global_row(lr, tp_rank) * blocks_per_full_row + first_col_block, L.blocks_per_row);
}

void Nf4Staging::quantize(const TensorSpec& s, const float* local) {
  std::vector<float> a(static_cast<size_t>(s.nf4.rows) * s.nf4.blocks_per_row);
  nf4_quantize_local(s, tp_rank, local, bytes + s.offset, a.data());
  absmax.emplace_back(s.name, std::move(a));
}

// ---- Dequantization: a row's blocks, 64 weights each: code value * the block's absmax'. ----

namespace {

// Where row lr's codes and block absmax come from.
struct ShardRows {
  const uint8_t* shard;
  const Nf4ShardLayout& L;
  const Nf4Row* rows = row_table(shard, L);
  const float* map = reinterpret_cast<const float*>(shard + L.map);
  const float* nested = reinterpret_cast<const float*>(shard + L.nested);
  const uint8_t* codes(int lr) const { return shard + L.codes + static_cast<size_t>(lr) * L.cols / 2; }
  // Block j of row lr's absmax as bitsandbytes dequantizes it (nf4::absmax_value).
  float absmax(int lr, int j) const {
    const Nf4Row& row = rows[lr];
    const uint32_t b = row.first_block + j;
    const uint8_t code = shard[L.absmax + static_cast<size_t>(lr) * L.blocks_per_row + j];
    return nf4::absmax_value(map[code], nested[row.first_group + b / nf4::kNestedBlocksize], row.offset);
  }
};

template <typename T>
void dequantize_scalar(const uint8_t* shard, const Nf4ShardLayout& L, int r0, int r1, T* out) {
  const ShardRows S{shard, L};
#pragma omp parallel for schedule(static)
  for (int lr = r0; lr < r1; ++lr) {
    const uint8_t* c = S.codes(lr);
    T* o = out + static_cast<size_t>(lr - r0) * L.cols;
    for (int j = 0; j < L.blocks_per_row; ++j) {
      const float amax = S.absmax(lr, j);
      for (int i = j * kNf4Blocksize / 2; i < (j + 1) * kNf4Blocksize / 2; ++i) {
        o[2 * i] = static_cast<T>(nf4::kNf4Code[c[i] >> 4] * amax);
        o[2 * i + 1] = static_cast<T>(nf4::kNf4Code[c[i] & 0x0F] * amax);
      }
    }
  }
}

// 8 codes (4 bytes) -> 8 floats: the nibbles in element order, then a table lookup in two
// 8-entry halves (vpermps) chosen by the code's high bit.
__attribute__((target("avx2,fma"))) void dequantize_avx2(const uint8_t* shard, const Nf4ShardLayout& L, int r0, int r1,
                                                        float* out) {
  const ShardRows S{shard, L};
#pragma omp parallel for schedule(static)
  for (int lr = r0; lr < r1; ++lr) {
    const __m256 lo_table = _mm256_loadu_ps(nf4::kNf4Code.data());
    const __m256 hi_table = _mm256_loadu_ps(nf4::kNf4Code.data() + 8);
    const __m256i pairs = _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3);
    const __m256i shifts = _mm256_setr_epi32(4, 0, 4, 0, 4, 0, 4, 0);  // byte k: element 2k high nibble, 2k+1 low
    const uint8_t* c = S.codes(lr);
    float* o = out + static_cast<size_t>(lr - r0) * L.cols;
    for (int j = 0; j < L.blocks_per_row; ++j) {
      const __m256 scale = _mm256_set1_ps(S.absmax(lr, j));
      for (int i = j * kNf4Blocksize / 2; i < (j + 1) * kNf4Blocksize / 2; i += 4) {
        uint32_t four;
        std::memcpy(&four, c + i, 4);
        const __m256i bytes = _mm256_cvtepu8_epi32(_mm_cvtsi32_si128(static_cast<int>(four)));
        const __m256i code = _mm256_and_si256(_mm256_srlv_epi32(_mm256_permutevar8x32_epi32(bytes, pairs), shifts),
                                              _mm256_set1_epi32(0x0F));
        const __m256 lo = _mm256_permutevar8x32_ps(lo_table, code);
        const __m256 hi = _mm256_permutevar8x32_ps(hi_table, code);
        const __m256 high_bit = _mm256_castsi256_ps(_mm256_slli_epi32(code, 28));  // bit 3 to the sign
        _mm256_storeu_ps(o + 2 * i, _mm256_mul_ps(_mm256_blendv_ps(lo, hi, high_bit), scale));
      }
    }
  }
}

// 16 codes (8 bytes) -> 16 floats: the whole 16-entry table in one register (vpermps zmm).
__attribute__((target("avx512f"))) void dequantize_avx512(const uint8_t* shard, const Nf4ShardLayout& L, int r0, int r1,
                                                         float* out) {
  const ShardRows S{shard, L};
#pragma omp parallel for schedule(static)
  for (int lr = r0; lr < r1; ++lr) {
    const __m512 table = _mm512_loadu_ps(nf4::kNf4Code.data());
    const __m512i pairs = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
    const __m512i shifts = _mm512_setr_epi32(4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0);
    const uint8_t* c = S.codes(lr);
    float* o = out + static_cast<size_t>(lr - r0) * L.cols;
    for (int j = 0; j < L.blocks_per_row; ++j) {
      const __m512 scale = _mm512_set1_ps(S.absmax(lr, j));
      for (int i = j * kNf4Blocksize / 2; i < (j + 1) * kNf4Blocksize / 2; i += 8) {
        const __m512i bytes = _mm512_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(c + i)));
        const __m512i code = _mm512_and_si512(_mm512_srlv_epi32(_mm512_permutexvar_epi32(pairs, bytes), shifts),
                                              _mm512_set1_epi32(0x0F));
        _mm512_storeu_ps(o + 2 * i, _mm512_mul_ps(_mm512_permutexvar_ps(code, table), scale));
      }
    }
  }
}

enum class Unit { Scalar, Avx2, Avx512 };
Unit unit() {
  static const Unit u = __builtin_cpu_supports("avx512f") ? Unit::Avx512
                        : (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) ? Unit::Avx2
                                                                                             : Unit::Scalar;
  return u;
}

}  // namespace

const char* nf4_dequantize_kernel() {
  switch (unit()) {
    case Unit::Avx512: return "avx512";
    case Unit::Avx2: return "avx2";
    default: return "scalar";
  }
}

std::vector<std::string> nf4_dequantize_units() {
  std::vector<std::string> units;
  if (unit() == Unit::Avx512) units.push_back("avx512");
  if (unit() != Unit::Scalar) units.push_back("avx2");  // every AVX-512 CPU has AVX2 and FMA
  units.push_back("scalar");
  return units;
}

void nf4_dequantize_rows_with(const std::string& name, const uint8_t* shard, const Nf4ShardLayout& L, int r0, int r1,
                              float* out) {
  const std::vector<std::string> units = nf4_dequantize_units();
  if (std::find(units.begin(), units.end(), name) == units.end())
    throw std::invalid_argument("nf4: this CPU cannot run the " + name + " dequantization");
  if (name == "avx512") return dequantize_avx512(shard, L, r0, r1, out);
  if (name == "avx2") return dequantize_avx2(shard, L, r0, r1, out);
  dequantize_scalar(shard, L, r0, r1, out);
}

template <>
void nf4_dequantize_rows<float>(const uint8_t* shard, const Nf4ShardLayout& L, int r0, int r1, float* out) {
  switch (unit()) {
    case Unit::Avx512: return dequantize_avx512(shard, L, r0, r1, out);
    case Unit::Avx2: return dequantize_avx2(shard, L, r0, r1, out);
    default: return dequantize_scalar(shard, L, r0, r1, out);
  }
}

template <>
void nf4_dequantize_rows<double>(const uint8_t* shard, const Nf4ShardLayout& L, int r0, int r1, double* out) {
  dequantize_scalar(shard, L, r0, r1, out);  // the gradient checks' model: the same fp32 values, widened
}

}  // namespace lora
