// NF4 with double quantization, following bitsandbytes' CUDA kernels (csrc/kernels.cu:
// kQuantizeBlockwise, dQuantizeNF4, dQuantize, kDequantizeBlockwise) and functional.py
// (quantize_4bit, create_dynamic_map), which is how the "-bnb-4bit" folders on the Hub were
// made. Every fp32 operation is written as bitsandbytes does it (a multiply by 1/absmax, not a
// division), so that codes agree bit for bit; see docs/nf4.md.
#include "model/nf4.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace lora::nf4 {

namespace {

// a * b rounded to fp32 on its own. With -march=native GCC contracts a * b + c into one fused
// multiply-add, which rounds once; bitsandbytes rounds the product, then the sum (they are
// separate kernels or separate statements there), so the product passes through memory here.
float mul_rounded(float a, float b) {
  volatile float p = a * b;
  return p;
}

void check_blocksize(int blocksize) {
  // bitsandbytes allows 32 ... 4096; any even size keeps a byte's two codes in one block.
  if (blocksize < 2 || blocksize % 2 != 0)
    throw std::invalid_argument("nf4 blocksize must be even and at least 2, got " + std::to_string(blocksize));
}

void check_finite(const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(x[i]))
      throw std::invalid_argument(std::string("nf4: ") + (std::isnan(x[i]) ? "NaN" : "infinite value") +
                                  " at element " + std::to_string(i));
}

// torch.linspace(0.1, 1, steps) in float32 as PyTorch's CPU kernel (RangeFactoriesKernel.cpp,
// the AVX2 build) computes it, since create_dynamic_map calls it and the map's last bits
// depend on it. step = (end - start) / (steps - 1) in float; element i is start + step * i
// for the first half and end - step * (steps - 1 - i) for the second, each one fused
// multiply-add; but while 16 or more elements remain the kernel writes two 8-lane vectors,
// each lane k = (that formula at the vector's first index) + k * step, rounded twice.
std::vector<float> torch_linspace_0p1_to_1(int steps) {
  const float start = 0.1f, end = 1.0f;
  const float step = (end - start) / static_cast<float>(steps - 1);
  const int halfway = steps / 2;
  auto scalar = [&](int i) {
    return i < halfway ? std::fma(step, static_cast<float>(i), start)
                       : std::fma(-step, static_cast<float>(steps - i - 1), end);
  };
  std::vector<float> v(steps);
  int i = 0;
  for (; i + 16 <= steps; i += 16)
    for (int half = 0; half < 2; ++half) {
      const int first = i + 8 * half;
      const float base = scalar(first);
      for (int k = 0; k < 8; ++k) v[first + k] = base + mul_rounded(static_cast<float>(k), step);
    }
  for (; i < steps; ++i) v[i] = scalar(i);
  return v;
}

// create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8) (functional.py):
//   for i in 0..6: b = linspace(0.1, 1, 2**i + 1); means = (b[:-1] + b[1:]) / 2
//                  data += 10**(i - 6) * means and -(10**(i - 6)) * means    (float32)
//   no "additional items" (2**(7 - 7) - 1 = 0); data += [0, 1.0]; sorted.
// 127 positive values, their 127 negatives, 0 and 1: 256. The scale 10**(i-6) is a Python
// float that PyTorch rounds to float32 before the float32 multiply.
std::array<float, 256> make_dynamic_map_signed() {
  std::vector<float> data;
  for (int i = 0; i < 7; ++i) {
    const std::vector<float> b = torch_linspace_0p1_to_1((1 << i) + 1);
    const float scale = static_cast<float>(std::pow(10.0, i - 6));
    for (size_t k = 0; k + 1 < b.size(); ++k) {
      const float mean = (b[k] + b[k + 1]) / 2.0f;
      data.push_back(scale * mean);
      data.push_back(-scale * mean);
    }
  }
  data.push_back(0.0f);
  data.push_back(1.0f);
  std::sort(data.begin(), data.end());
  std::array<float, 256> map{};
  if (data.size() != map.size()) throw std::logic_error("dynamic map: expected 256 values");
  std::copy(data.begin(), data.end(), map.begin());
  return map;
}

}  // namespace

uint8_t quantize_nf4_value(float x) {
  // bitsandbytes' decision tree: each threshold is the midpoint of two adjacent codes (the
  // float literals of dQuantizeNF4), and `x > threshold` goes up, so a value exactly on a
  // midpoint takes the lower code (towards -1). A NaN fails every test and gets code 0; that
  // happens for a block whose absmax is 0 (0 * (1/0)), whose elements bitsandbytes stores as
  // code 0 (-1.0 * absmax 0 = -0.0 in the first stage).
  if (x > 0.03979014977812767f) {
    if (x > 0.3893125355243683f) {
      if (x > 0.6427869200706482f) return x > 0.8614784181118011f ? 0b1111 : 0b1110;
      return x > 0.5016634166240692f ? 0b1101 : 0b1100;
    }
    if (x > 0.2035212516784668f) return x > 0.2920137718319893f ? 0b1011 : 0b1010;
    return x > 0.1202552504837513f ? 0b1001 : 0b1000;
  }
  if (x > -0.33967943489551544f) {
    if (x > -0.13791173323988914f) return x > -0.045525018125772476f ? 0b0111 : 0b0110;
    return x > -0.23460740596055984f ? 0b0101 : 0b0100;
  }
  if (x > -0.6106329262256622f) return x > -0.4599952697753906f ? 0b0011 : 0b0010;
  return x > -0.8480964004993439f ? 0b0001 : 0b0000;
}

const std::array<float, 256>& dynamic_map_signed() {
  static const std::array<float, 256> map = make_dynamic_map_signed();
  return map;
}

uint8_t quantize_dynamic_value(const std::array<float, 256>& map, float x) {
  // dQuantize<STOCHASTIC=0> of csrc/kernels.cu, step for step: seven halvings from pivot 127
  // (steps 64 ... 1) leave pivot on an even index with its last lower and upper pivots; then
  // the value goes to whichever neighbour's midpoint it passes. Ties: above `val` a value on
  // the midpoint stays at pivot; below it, too (`x < midpoint` to move down). A NaN walks
  // left every time and gets code 0 (an all-equal absmax block: 0 * (1/0)).
  int pivot = 127, upper_pivot = 255, lower_pivot = 0;
  float lower = -1.0f, upper = 1.0f;
  float val = map[pivot];
  for (int i = 64; i > 0; i >>= 1) {
    if (x > val) {
      lower_pivot = pivot;
      lower = val;
      pivot += i;
    } else {
      upper_pivot = pivot;
      upper = val;
      pivot -= i;
    }
    val = map[pivot];
  }
  if (upper_pivot == 255) upper = map[upper_pivot];
  if (lower_pivot == 0) lower = map[lower_pivot];
  if (x > val) {
    const float midpoint = (upper + val) * 0.5f;
    return static_cast<uint8_t>(x > midpoint ? upper_pivot : pivot);
  }
  const float midpoint = (lower + val) * 0.5f;
  return static_cast<uint8_t>(x < midpoint ? lower_pivot : pivot);
}

int64_t Nf4Tensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

size_t Nf4Tensor::bytes() const {
  return codes.size() + absmax_codes.size() + nested_scales.size() * sizeof(float) + sizeof(float);
}

size_t nf4_bytes(int64_t n, int blocksize) {
  const int64_t blocks = (n + blocksize - 1) / blocksize;
  const int64_t nested = (blocks + kNestedBlocksize - 1) / kNestedBlocksize;
  return static_cast<size_t>((n + 1) / 2 + blocks + 4 * nested + 4);
}

void quantize_blocks(const float* x, int64_t n, int blocksize, uint8_t* packed, float* absmax) {
  check_blocksize(blocksize);
  check_finite(x, n);
  const int64_t blocks = (n + blocksize - 1) / blocksize;
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t begin = b * blocksize, end = std::min(n, begin + blocksize);  // last block may be short
    float amax = 0.0f;
    for (int64_t i = begin; i < end; ++i) amax = std::max(amax, std::fabs(x[i]));
    absmax[b] = amax;
    // bitsandbytes multiplies by the reciprocal (1/0 = inf for an all-zero block, see above).
    const float inv = 1.0f / amax;
    for (int64_t i = begin; i < end; i += 2) {
      const uint8_t hi = quantize_nf4_value(x[i] * inv);
      // An odd n: the kernel loads the missing element as 0, so the pad nibble is the code
      // of 0 * inv (7, or 0 for an all-zero block). Dequantization never reads it.
      const uint8_t lo = quantize_nf4_value((i + 1 < end ? x[i + 1] : 0.0f) * inv);
      packed[i / 2] = static_cast<uint8_t>(hi << 4 | lo);
    }
  }
}

void quantize_absmax(const float* absmax, int64_t blocks, uint8_t* codes, std::vector<float>& nested_scales,
                     float& offset) {
  // torch's absmax.mean() reduces in float32 in an order that depends on the device; the sum
  // here runs in double, in order, and the mean is rounded to float once (docs/nf4.md).
  double sum = 0.0;
  for (int64_t b = 0; b < blocks; ++b) sum += absmax[b];
  offset = blocks > 0 ? static_cast<float>(sum / static_cast<double>(blocks)) : 0.0f;
  const std::array<float, 256>& map = dynamic_map_signed();
  const int64_t nested = (blocks + kNestedBlocksize - 1) / kNestedBlocksize;
  nested_scales.assign(static_cast<size_t>(nested), 0.0f);
  std::vector<float> centred(kNestedBlocksize);
  for (int64_t g = 0; g < nested; ++g) {
    const int64_t begin = g * kNestedBlocksize, end = std::min(blocks, begin + kNestedBlocksize);
    float amax = 0.0f;
    for (int64_t b = begin; b < end; ++b) {
      centred[b - begin] = absmax[b] - offset;
      amax = std::max(amax, std::fabs(centred[b - begin]));
    }
    nested_scales[g] = amax;
    const float inv = 1.0f / amax;
    for (int64_t b = begin; b < end; ++b) codes[b] = quantize_dynamic_value(map, centred[b - begin] * inv);
  }
}

Nf4Tensor quantize(const float* x, const std::vector<int64_t>& shape, int blocksize) {
  Nf4Tensor t;
  t.shape = shape;
  t.blocksize = blocksize;
  const int64_t n = t.numel();
  if (n < 0) throw std::invalid_argument("nf4: negative dimension");
  check_blocksize(blocksize);
  const int64_t blocks = (n + blocksize - 1) / blocksize;
  t.codes.assign(static_cast<size_t>((n + 1) / 2), 0);
  std::vector<float> absmax(static_cast<size_t>(blocks));
  quantize_blocks(x, n, blocksize, t.codes.data(), absmax.data());
  t.absmax_codes.assign(static_cast<size_t>(blocks), 0);
  quantize_absmax(absmax.data(), blocks, t.absmax_codes.data(), t.nested_scales, t.offset);
  return t;
}

float absmax_value(float map_value, float scale, float offset) { return mul_rounded(map_value, scale) + offset; }

float block_absmax(const Nf4Tensor& t, int64_t block) {
  return absmax_value(dynamic_map_signed()[t.absmax_codes[block]], t.nested_scales[block / kNestedBlocksize], t.offset);
}

namespace {
// Elements [begin, end) of the flat tensor into out, all inside block `block`.
void dequantize_span(const Nf4Tensor& t, int64_t block, int64_t begin, int64_t end, float* out) {
  const float amax = block_absmax(t, block);
  for (int64_t i = begin; i < end; ++i) {
    const uint8_t byte = t.codes[i / 2];
    const uint8_t code = (i % 2 == 0) ? byte >> 4 : byte & 0x0F;
    out[i - begin] = kNf4Code[code] * amax;
  }
}
}  // namespace

void dequantize_block(const Nf4Tensor& t, int64_t block, float* out) {
  const int64_t begin = block * t.blocksize, end = std::min(t.numel(), begin + t.blocksize);
  dequantize_span(t, block, begin, end, out);
}

std::vector<float> dequantize(const Nf4Tensor& t) {
  std::vector<float> out(static_cast<size_t>(t.numel()));
  for (int64_t b = 0; b < t.num_blocks(); ++b) dequantize_block(t, b, out.data() + b * t.blocksize);
  return out;
}

void dequantize_rows(const Nf4Tensor& t, int64_t r0, int64_t r1, float* out) {
  if (t.shape.size() != 2) throw std::invalid_argument("nf4 dequantize_rows: the tensor is not 2-D");
  if (r0 < 0 || r1 < r0 || r1 > t.shape[0]) throw std::out_of_range("nf4 dequantize_rows: rows out of range");
  const int64_t begin = r0 * t.shape[1], end = r1 * t.shape[1];
  // Block by block over [begin, end): the first and last spans may be parts of blocks.
  for (int64_t i = begin; i < end;) {
    const int64_t block = i / t.blocksize;
    const int64_t span_end = std::min(end, (block + 1) * t.blocksize);
    dequantize_span(t, block, i, span_end, out + (i - begin));
    i = span_end;
  }
}

}  // namespace lora::nf4
