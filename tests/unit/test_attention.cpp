// The blocked causal attention kernel against a plain one written here: full T x T scores,
// causal mask, softmax, P V, and the textbook backward through the stored P, in double;
// grouped-query (Hkv < H KV heads, query head h reading KV head h / (H / Hkv)) as well.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "gradcheck.h"
#include "model/ops/attention.h"

namespace lora::test {
namespace {

struct Reference {
  std::vector<double> att, lse, dqkv;
};

// qkv rows [q | k | v], q H*hd wide, k and v Hkv*hd; datt the output gradient.
Reference reference_attention(const std::vector<double>& qkv, const std::vector<double>& datt, int B, int T, int H,
                              int Hkv, int hd) {
  const int dl = H * hd, kvl = Hkv * hd, ld = dl + 2 * kvl, group = H / Hkv;
  const double scale = 1.0 / std::sqrt(double(hd));
  Reference r;
  r.att.assign(size_t(B) * T * dl, 0.0);
  r.lse.assign(size_t(B) * H * T, 0.0);
  r.dqkv.assign(qkv.size(), 0.0);
  std::vector<double> P(size_t(T) * T), dP(size_t(T) * T);
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < H; ++h) {
      auto q = [&](int i, int x) { return qkv[(size_t(b) * T + i) * ld + h * hd + x]; };
      const int kv = (h / group) * hd;  // this query head's KV head
      auto k = [&](int i, int x) { return qkv[(size_t(b) * T + i) * ld + dl + kv + x]; };
      auto v = [&](int i, int x) { return qkv[(size_t(b) * T + i) * ld + dl + kvl + kv + x]; };
      auto g = [&](int i, int x) { return datt[(size_t(b) * T + i) * dl + h * hd + x]; };
      for (int i = 0; i < T; ++i) {
        double mx = -INFINITY;
        for (int j = 0; j < T; ++j) {
          double s = 0;
          for (int x = 0; x < hd; ++x) s += q(i, x) * k(j, x);
          P[size_t(i) * T + j] = j <= i ? s * scale : -INFINITY;
          mx = std::max(mx, P[size_t(i) * T + j]);
        }
        double sum = 0;
        for (int j = 0; j < T; ++j) sum += (P[size_t(i) * T + j] = std::exp(P[size_t(i) * T + j] - mx));
        for (int j = 0; j < T; ++j) P[size_t(i) * T + j] /= sum;
        r.lse[(size_t(b) * H + h) * T + i] = mx + std::log(sum);
        for (int x = 0; x < hd; ++x) {
          double o = 0;
          for (int j = 0; j < T; ++j) o += P[size_t(i) * T + j] * v(j, x);
          r.att[(size_t(b) * T + i) * dl + h * hd + x] = o;
        }
      }
      // dV = P^T dO, dP = dO V^T, dS = P (dP - rowsum(P dP)), dQ = dS K s, dK = dS^T Q s
      for (int i = 0; i < T; ++i)
        for (int j = 0; j < T; ++j) {
          double s = 0;
          for (int x = 0; x < hd; ++x) s += g(i, x) * v(j, x);
          dP[size_t(i) * T + j] = s;
        }
      for (int i = 0; i < T; ++i) {
        double dot = 0;
        for (int j = 0; j < T; ++j) dot += P[size_t(i) * T + j] * dP[size_t(i) * T + j];
        for (int j = 0; j < T; ++j) dP[size_t(i) * T + j] = P[size_t(i) * T + j] * (dP[size_t(i) * T + j] - dot);
      }
      for (int i = 0; i < T; ++i)
        for (int x = 0; x < hd; ++x) {
          double dq = 0, dk = 0, dv = 0;
          for (int j = 0; j < T; ++j) {
            dq += dP[size_t(i) * T + j] * k(j, x);
            dk += dP[size_t(j) * T + i] * q(j, x);
            dv += P[size_t(j) * T + i] * g(j, x);
          }
          const size_t row = (size_t(b) * T + i) * ld;
          r.dqkv[row + h * hd + x] = dq * scale;
          r.dqkv[row + dl + kv + x] += dk * scale;  // summed over the group's query heads
          r.dqkv[row + dl + kvl + kv + x] += dv;
        }
    }
  return r;
}

void check_against_reference(int B, int T, int H, int hd, uint32_t stream, double qk_scale, int Hkv = 0) {
  if (Hkv == 0) Hkv = H;
  SCOPED_TRACE(::testing::Message() << "B=" << B << " T=" << T << " H=" << H << " Hkv=" << Hkv << " hd=" << hd);
  const int dl = H * hd;
  const auto qkv = random_vector(size_t(B) * T * (dl + 2 * Hkv * hd), stream, qk_scale);
  const auto datt = random_vector(size_t(B) * T * dl, stream + 1);
  const Reference ref = reference_attention(qkv, datt, B, T, H, Hkv, hd);

  // Double: the blocked kernel does the same math in another order.
  std::vector<double> att(ref.att.size()), lse(ref.lse.size()), dqkv(qkv.size(), 7.0);  // overwritten
  attention_forward(att.data(), lse.data(), qkv.data(), B, T, H, Hkv, hd);
  attention_backward(dqkv.data(), datt.data(), qkv.data(), att.data(), lse.data(), B, T, H, Hkv, hd);
  EXPECT_LT(rel_error(att, ref.att), 1e-12);
  EXPECT_LT(rel_error(lse, ref.lse), 1e-12);
  EXPECT_LT(rel_error(dqkv, ref.dqkv), 1e-12);

  // Float against the double reference.
  std::vector<float> qkv_f(qkv.begin(), qkv.end()), datt_f(datt.begin(), datt.end());
  std::vector<float> att_f(att.size()), lse_f(lse.size()), dqkv_f(qkv.size(), 7.0f);
  attention_forward(att_f.data(), lse_f.data(), qkv_f.data(), B, T, H, Hkv, hd);
  attention_backward(dqkv_f.data(), datt_f.data(), qkv_f.data(), att_f.data(), lse_f.data(), B, T, H, Hkv, hd);
  EXPECT_LT(rel_error(std::vector<double>(att_f.begin(), att_f.end()), ref.att), 1e-5);
  EXPECT_LT(rel_error(std::vector<double>(lse_f.begin(), lse_f.end()), ref.lse), 1e-5);
  EXPECT_LT(rel_error(std::vector<double>(dqkv_f.begin(), dqkv_f.end()), ref.dqkv), 1e-5);
}

TEST(Attention, MatchesPlainKernelWithinOneBlock) { check_against_reference(2, 5, 3, 4, 41, 1.0); }

TEST(Attention, MatchesPlainKernelAcrossPartialBlocks) {
  // Two full blocks and a partial one of 2 rows.
  check_against_reference(2, 2 * kAttentionBlock + 2, 3, 8, 43, 1.0);
}

TEST(Attention, MatchesPlainKernelAtExactBlockMultiple) {
  check_against_reference(1, 2 * kAttentionBlock, 2, 16, 45, 1.0);
}

TEST(Attention, MatchesPlainKernelForOneToken) { check_against_reference(3, 1, 2, 4, 47, 1.0); }

TEST(Attention, GroupedQueryMatchesPlainKernel) {
  check_against_reference(2, 5, 4, 4, 53, 1.0, /*Hkv=*/2);                      // groups of 2
  check_against_reference(1, kAttentionBlock + 9, 6, 8, 55, 1.0, /*Hkv=*/2);    // groups of 3, two blocks
  check_against_reference(2, 7, 4, 4, 57, 1.0, /*Hkv=*/1);                      // multi-query
}

TEST(Attention, MatchesPlainKernelWithLargeScores) {
  // Scores of order +-100: the running max must move between key blocks without overflow.
  check_against_reference(1, kAttentionBlock + 37, 2, 16, 49, 3.0);
}

TEST(Attention, OneTokenAttendsOnlyToItself) {
  const int B = 2, T = 1, H = 3, hd = 4, dl = H * hd;
  const auto qkv = random_vector(size_t(B) * T * 3 * dl, 51);
  std::vector<double> att(size_t(B) * T * dl), lse(size_t(B) * H * T);
  attention_forward(att.data(), lse.data(), qkv.data(), B, T, H, H, hd);
  for (int b = 0; b < B; ++b)
    for (int c = 0; c < dl; ++c) EXPECT_EQ(att[size_t(b) * dl + c], qkv[size_t(b) * 3 * dl + 2 * dl + c]);
}

}  // namespace
}  // namespace lora::test
