// NF4 with double quantization (model/nf4): the code tables, the round-trip error bound,
// zeros, a huge value, sizes around the block size, refused NaN/inf, the byte count.
// Bit-for-bit agreement with bitsandbytes' algorithm is tests/nf4/ (ctest nf4.*).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "model/nf4.h"

namespace lora::nf4 {
namespace {

// Half the widest gap between adjacent NF4 codes (-1 and -0.6961928): the most an element
// divided by its block's absmax can be from its code.
constexpr double kNf4HalfGap = (1.0 - 0.6961928009986877) / 2.0;  // 0.1519036
// Half the widest gap of the signed dynamic map: its top decade is spaced 0.9 / 64 = 0.0140625
// and its lowest value is -0.99296875, 0.00703125 above -1.
constexpr double kMapHalfGap = 0.00703125;

std::vector<float> normal(size_t n, unsigned seed, float sigma = 1.0f) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> d(0.0f, sigma);
  std::vector<float> v(n);
  for (float& x : v) x = d(gen);
  return v;
}

// The true absmax of block b.
float true_absmax(const std::vector<float>& x, int64_t b, int bs) {
  float m = 0.0f;
  for (int64_t i = b * bs; i < std::min<int64_t>(x.size(), (b + 1) * bs); ++i) m = std::max(m, std::fabs(x[i]));
  return m;
}

// The bound, per element of block b with true absmax A and dequantized absmax A':
//   |x - dq(x)| <= kNf4HalfGap * A + |A - A'|          (|code| <= 1)
//   |A - A'|    <= kMapHalfGap * scale                  (scale: A's nested block's fp32 absmax)
// each plus a few fp32 roundings (2e-6 relative here).
void expect_within_bound(const std::vector<float>& x, const Nf4Tensor& t) {
  const std::vector<float> dq = dequantize(t);
  ASSERT_EQ(dq.size(), x.size());
  for (int64_t b = 0; b < t.num_blocks(); ++b) {
    const double a = true_absmax(x, b, t.blocksize);
    const double a_dq = block_absmax(t, b);
    const double scale = t.nested_scales[b / kNestedBlocksize];
    const double slack = 2e-6 * (std::fabs(a) + std::fabs(t.offset) + scale);
    const double nested_err = std::fabs(a - a_dq);
    ASSERT_LE(nested_err, kMapHalfGap * scale + slack) << "block " << b;
    for (int64_t i = b * t.blocksize; i < std::min<int64_t>(x.size(), (b + 1) * t.blocksize); ++i)
      ASSERT_LE(std::fabs(double(x[i]) - dq[i]), kNf4HalfGap * a + nested_err + slack) << "element " << i;
  }
}

TEST(Nf4Format, CodeTableIsBitsandbytes) {
  EXPECT_EQ(kNf4Code.front(), -1.0f);
  EXPECT_EQ(kNf4Code.back(), 1.0f);
  EXPECT_EQ(kNf4Code[7], 0.0f);
  EXPECT_EQ(kNf4Code[8], 0.07958029955625534f);
  EXPECT_TRUE(std::is_sorted(kNf4Code.begin(), kNf4Code.end()));
  double widest = 0;
  for (int k = 0; k + 1 < 16; ++k) widest = std::max(widest, double(kNf4Code[k + 1]) - kNf4Code[k]);
  EXPECT_NEAR(widest / 2, kNf4HalfGap, 1e-7);
}

TEST(Nf4Format, ValueQuantizerIsNearestCode) {
  std::mt19937 gen(1);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (int i = 0; i < 100000; ++i) {
    const float x = u(gen);
    const uint8_t q = quantize_nf4_value(x);
    for (float c : kNf4Code) ASSERT_LE(std::fabs(x - kNf4Code[q]), std::fabs(x - c) + 1e-7f) << x;
  }
  EXPECT_EQ(quantize_nf4_value(0.0f), 7);
  EXPECT_EQ(quantize_nf4_value(-1.0f), 0);
  EXPECT_EQ(quantize_nf4_value(1.0f), 15);
  // On a midpoint (the kernel's float literal) the lower code wins.
  EXPECT_EQ(quantize_nf4_value(0.03979014977812767f), 7);
  EXPECT_EQ(quantize_nf4_value(std::nextafter(0.03979014977812767f, 1.0f)), 8);
  EXPECT_EQ(quantize_nf4_value(std::numeric_limits<float>::quiet_NaN()), 0);
}

TEST(Nf4Format, DynamicMapShape) {
  const auto& m = dynamic_map_signed();
  EXPECT_TRUE(std::is_sorted(m.begin(), m.end()));
  EXPECT_EQ(std::adjacent_find(m.begin(), m.end()), m.end());  // strictly increasing
  EXPECT_EQ(m[255], 1.0f);
  EXPECT_EQ(m[254], 0.99296875f);
  EXPECT_EQ(m[0], -0.99296875f);
  EXPECT_EQ(m[127], 0.0f);
  EXPECT_NEAR(m[128], 0.55e-6, 1e-12);  // 10^-6 * (0.1 + 1) / 2
  // The farthest any value in [-1, 1] is from the map: below m[0] (down to -1) or half a gap.
  double farthest = 1.0 + m[0];
  for (int k = 0; k + 1 < 256; ++k) farthest = std::max(farthest, (double(m[k + 1]) - m[k]) / 2.0);
  EXPECT_NEAR(farthest, kMapHalfGap, 1e-6);
  for (int k = 0; k < 256; ++k) EXPECT_EQ(quantize_dynamic_value(m, m[k]), k) << k;
}

TEST(Nf4Format, RoundTripWithinBoundAtManySizes) {
  for (int64_t n : {1, 2, 63, 64, 65, 127, 1000, 64 * 256, 64 * 300 + 5}) {
    SCOPED_TRACE(n);
    const std::vector<float> x = normal(n, static_cast<unsigned>(n), 0.02f);
    const Nf4Tensor t = quantize(x.data(), {n});
    EXPECT_EQ(t.numel(), n);
    EXPECT_EQ(t.codes.size(), size_t((n + 1) / 2));
    EXPECT_EQ(t.num_blocks(), (n + 63) / 64);
    EXPECT_EQ(t.nested_scales.size(), size_t((t.num_blocks() + 255) / 256));
    expect_within_bound(x, t);
  }
}

TEST(Nf4Format, OtherBlocksizes) {
  const std::vector<float> x = normal(5000, 3);
  for (int bs : {32, 128, 256, 4096}) {
    const Nf4Tensor t = quantize(x.data(), {5000}, bs);
    EXPECT_EQ(t.num_blocks(), (5000 + bs - 1) / bs);
    expect_within_bound(x, t);
  }
  EXPECT_THROW(quantize(x.data(), {5000}, 63), std::invalid_argument);
  EXPECT_THROW(quantize(x.data(), {5000}, 0), std::invalid_argument);
}

TEST(Nf4Format, ExactZeroStaysZero) {
  std::vector<float> x = normal(256, 5);
  for (size_t i = 0; i < x.size(); i += 3) x[i] = 0.0f;
  const Nf4Tensor t = quantize(x.data(), {256});
  const std::vector<float> dq = dequantize(t);
  for (size_t i = 0; i < x.size(); i += 3) EXPECT_EQ(dq[i], 0.0f) << i;  // code 7 is exactly 0
}

TEST(Nf4Format, AllZeroBlocks) {
  // All zeros: absmax 0, offset 0, nested scale 0; bitsandbytes scales by 1/0 and so stores
  // code 0 (-1.0) for every element, which dequantizes to -1.0 * 0 = -0.0.
  const std::vector<float> zeros(130, 0.0f);
  const Nf4Tensor t = quantize(zeros.data(), {130});
  EXPECT_EQ(t.offset, 0.0f);
  EXPECT_EQ(t.nested_scales, std::vector<float>{0.0f});
  for (uint8_t c : t.codes) EXPECT_EQ(c, 0);
  for (float v : dequantize(t)) EXPECT_EQ(v, 0.0f);
  // Zero blocks among others: the block's absmax comes back as offset + map * scale, not 0,
  // so its elements come back as -A' with |A'| within the nested error (bitsandbytes does the
  // same); the bound covers it.
  std::vector<float> x = normal(64 * 10, 6);
  std::fill(x.begin() + 64 * 3, x.begin() + 64 * 5, 0.0f);
  const Nf4Tensor u = quantize(x.data(), {64 * 10});
  expect_within_bound(x, u);
  for (int64_t i = 64 * 3 / 2; i < 64 * 5 / 2; ++i) EXPECT_EQ(u.codes[i], 0);
}

TEST(Nf4Format, OneHugeValueInABlock) {
  std::vector<float> x = normal(1000, 7);
  x[77] = 1e6f;
  const Nf4Tensor t = quantize(x.data(), {1000});
  const std::vector<float> dq = dequantize(t);
  EXPECT_NEAR(dq[77], 1e6, kMapHalfGap * t.nested_scales[0] + 1.0);
  // The rest of its block (|x| < 5 against an absmax of 1e6) lands on code 7: exactly 0.
  for (int i = 64; i < 128; ++i) {
    if (i == 77) continue;
    EXPECT_EQ(dq[i], 0.0f) << i;
  }
  expect_within_bound(x, t);  // the other blocks' scales pay for the outlier through the nested map
}

TEST(Nf4Format, OddSizePadsTheLastNibble) {
  const std::vector<float> x = normal(65, 8);
  const Nf4Tensor t = quantize(x.data(), {65});
  ASSERT_EQ(t.codes.size(), 33u);
  EXPECT_EQ(t.codes[32] & 0x0F, 7);  // the missing element is quantized as 0
  std::vector<float> last(1);
  dequantize_block(t, 1, last.data());
  EXPECT_EQ(last[0], dequantize(t)[64]);
  // High nibble first: element 0 is the top of byte 0.
  EXPECT_EQ(t.codes[0] >> 4, quantize_nf4_value(x[0] * (1.0f / true_absmax(x, 0, 64))));
}

TEST(Nf4Format, DequantizeRowsMatchesTheWholeTensor) {
  for (int64_t cols : {48, 100, 64, 7}) {
    const int64_t rows = 37;
    const std::vector<float> x = normal(rows * cols, static_cast<unsigned>(cols));
    const Nf4Tensor t = quantize(x.data(), {rows, cols});
    const std::vector<float> all = dequantize(t);
    for (auto [r0, r1] : {std::pair<int64_t, int64_t>{0, rows}, {3, 11}, {36, 37}, {5, 5}}) {
      std::vector<float> part(static_cast<size_t>((r1 - r0) * cols));
      dequantize_rows(t, r0, r1, part.data());
      for (size_t i = 0; i < part.size(); ++i) ASSERT_EQ(part[i], all[r0 * cols + i]) << cols << " " << r0;
    }
  }
  const std::vector<float> x = normal(64, 9);
  const Nf4Tensor flat = quantize(x.data(), {64});
  float out[64];
  EXPECT_THROW(dequantize_rows(flat, 0, 1, out), std::invalid_argument);
}

TEST(Nf4Format, NonFiniteRefusedNamingTheElement) {
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                    -std::numeric_limits<float>::infinity()}) {
    std::vector<float> x = normal(100, 10);
    x[70] = bad;
    try {
      quantize(x.data(), {100});
      ADD_FAILURE() << "accepted " << bad;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("element 70"), std::string::npos) << e.what();
    }
  }
}

TEST(Nf4Format, BytesCount) {
  for (int64_t n : {1, 63, 64, 65, 1000}) {
    const std::vector<float> x = normal(n, 11);
    const Nf4Tensor t = quantize(x.data(), {n});
    EXPECT_EQ(t.bytes(), nf4_bytes(n)) << n;
  }
  EXPECT_EQ(nf4_bytes(1), 1u + 1 + 4 + 4);
  EXPECT_EQ(nf4_bytes(64 * 256), 64u * 128 + 256 + 4 + 4);
  // 4 + 8/64 + 32/(64*256) = 4.127 bits a weight (the offset's 4 bytes vanish at scale).
  const int64_t n = int64_t(4096) * 4096;
  EXPECT_NEAR(8.0 * nf4_bytes(n) / double(n), 4.127, 0.0005);
}

}  // namespace
}  // namespace lora::nf4
