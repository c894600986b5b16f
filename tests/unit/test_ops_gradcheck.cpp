// Every operation's backward against central differences of its forward, in double.
// Each op's output is projected on a random tensor w, so the checked scalar is w . out
// and its gradient enters the backward as dout = w.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "gradcheck.h"
#include "model/ops/attention.h"
#include "model/ops/cross_entropy.h"
#include "model/ops/dropout.h"
#include "model/ops/embedding.h"
#include "model/ops/gelu.h"
#include "model/ops/layernorm.h"
#include "model/ops/linear.h"
#include "model/ops/lora.h"

namespace lora::test {
namespace {

constexpr double kTol = 1e-6;

TEST(OpsGradcheck, LinearInputGradient) {
  const int M = 5, K = 7, N = 6;
  auto x = random_vector(M * K, 1), w = random_vector(N * K, 2), b = random_vector(N, 3), proj = random_vector(M * N, 4);
  std::vector<double> y(M * N), dx(M * K);
  auto f = [&] {
    linear_forward(y.data(), x.data(), w.data(), b.data(), M, K, N);
    return dot(proj, y.data());
  };
  linear_backward_input(dx.data(), proj.data(), w.data(), M, K, N, false);
  EXPECT_LT(rel_error(dx, numeric_grad(f, x.data(), x.size())), kTol);
}

// Full fine-tuning (lora.enabled: false): the weight and bias gradients, accumulated.
TEST(OpsGradcheck, LinearWeightAndBiasGradients) {
  const int M = 5, K = 7, N = 6;
  auto x = random_vector(M * K, 31), w = random_vector(N * K, 32), b = random_vector(N, 33), proj = random_vector(M * N, 34);
  std::vector<double> y(M * N), dW(N * K, 0.25), db(N, -0.5);  // non-zero: the call accumulates
  auto f = [&] {
    linear_forward(y.data(), x.data(), w.data(), b.data(), M, K, N);
    return dot(proj, y.data());
  };
  linear_backward_weight(dW.data(), db.data(), proj.data(), x.data(), M, K, N);
  auto nW = numeric_grad(f, w.data(), w.size()), nb = numeric_grad(f, b.data(), b.size());
  for (auto& v : nW) v += 0.25;
  for (auto& v : nb) v -= 0.5;
  EXPECT_LT(rel_error(dW, nW), kTol);
  EXPECT_LT(rel_error(db, nb), kTol);
}

TEST(OpsGradcheck, LayerNormGainAndBiasGradients) {
  const int M = 4, C = 9;
  auto x = random_vector(M * C, 35, 2.0), w = random_vector(C, 36), b = random_vector(C, 37), proj = random_vector(M * C, 38);
  std::vector<double> out(M * C), mean(M), rstd(M), dw(C, 0.0), db(C, 0.0);
  auto f = [&] {
    layernorm_forward(out.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), M, C, 1e-5f);
    return dot(proj, out.data());
  };
  f();
  layernorm_backward_params(dw.data(), db.data(), proj.data(), x.data(), mean.data(), rstd.data(), M, C);
  EXPECT_LT(rel_error(dw, numeric_grad(f, w.data(), w.size())), kTol);
  EXPECT_LT(rel_error(db, numeric_grad(f, b.data(), b.size())), kTol);
}

TEST(OpsGradcheck, EmbeddingTableGradients) {
  // Vocabulary slice [3, 8) of a 10-token table on this "rank", repeated tokens, two
  // sequences of 4 starting at position 2.
  const int d = 3, v0 = 3, Vl = 5, B = 2, Tn = 4, pos0 = 2, P = 8;
  const std::vector<int32_t> tokens = {4, 7, 4, 1, 9, 3, 4, 5};
  auto wte = random_vector(Vl * d, 39), wpe = random_vector(P * d, 40), proj = random_vector(B * Tn * d, 41);
  std::vector<double> x(B * Tn * d), dwte(Vl * d, 0.0), dwpe(P * d, 0.0);
  auto f = [&] {
    embedding_forward<double>(x.data(), tokens.data(), wte.data(), v0, Vl, B * Tn, d);
    add_positions<double>(x.data(), wpe.data(), B, Tn, d, pos0);
    return dot(proj, x.data());
  };
  embedding_backward(dwte.data(), proj.data(), tokens.data(), v0, Vl, B * Tn, d);
  positions_backward(dwpe.data(), proj.data(), B, Tn, d, pos0);
  EXPECT_LT(rel_error(dwte, numeric_grad(f, wte.data(), wte.size())), kTol);
  EXPECT_LT(rel_error(dwpe, numeric_grad(f, wpe.data(), wpe.size())), kTol);
}

TEST(OpsGradcheck, LoraBranchGradients) {
  // A slice of columns [2, 2+N) of a wider output, as q/k/v inside the fused QKV.
  const int M = 6, K = 5, N = 4, r = 3, ldy = N + 3;
  const double s = 1.7;
  auto x = random_vector(M * K, 5), A = random_vector(r * K, 6), B = random_vector(N * r, 7),
       proj = random_vector(M * ldy, 8);
  std::vector<double> y(M * ldy), u(M * r), du(M * r), dx(M * K, 0.0), dA(r * K, 0.0), dB(N * r, 0.0);
  auto f = [&] {
    std::fill(y.begin(), y.end(), 0.0);
    lora_forward(y.data() + 2, ldy, u.data(), x.data(), A.data(), B.data(), M, K, N, r, s);
    return dot(proj, y.data());
  };
  f();
  lora_backward(dx.data(), dA.data(), dB.data(), du.data(), proj.data() + 2, ldy, x.data(), u.data(), A.data(),
                B.data(), M, K, N, r, s);
  EXPECT_LT(rel_error(dx, numeric_grad(f, x.data(), x.size())), kTol);
  EXPECT_LT(rel_error(dA, numeric_grad(f, A.data(), A.size())), kTol);
  EXPECT_LT(rel_error(dB, numeric_grad(f, B.data(), B.size())), kTol);
}

TEST(OpsGradcheck, LoraMergeEqualsBranch) {
  const int M = 4, K = 6, N = 5, r = 2;
  const double s = 0.5;
  auto x = random_vector(M * K, 9), A = random_vector(r * K, 10), B = random_vector(N * r, 11), W = random_vector(N * K, 12);
  std::vector<double> y_branch(M * N), y_merged(M * N), u(M * r), W0 = W;
  linear_forward(y_branch.data(), x.data(), W.data(), static_cast<const double*>(nullptr), M, K, N);
  lora_forward(y_branch.data(), N, u.data(), x.data(), A.data(), B.data(), M, K, N, r, s);
  lora_merge(W.data(), A.data(), B.data(), K, N, r, s);
  linear_forward(y_merged.data(), x.data(), W.data(), static_cast<const double*>(nullptr), M, K, N);
  EXPECT_LT(rel_error(y_branch, y_merged), 1e-14);
  lora_merge(W.data(), A.data(), B.data(), K, N, r, -s);  // unmerge restores W0
  EXPECT_LT(rel_error(W, W0), 1e-14);
}

TEST(OpsGradcheck, LayerNormInputGradient) {
  const int M = 4, C = 9;
  auto x = random_vector(M * C, 13, 2.0), w = random_vector(C, 14), b = random_vector(C, 15), proj = random_vector(M * C, 16);
  std::vector<double> out(M * C), mean(M), rstd(M), dx(M * C, 0.0);
  auto f = [&] {
    layernorm_forward(out.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), M, C, 1e-5f);
    return dot(proj, out.data());
  };
  f();
  layernorm_backward(dx.data(), proj.data(), x.data(), mean.data(), rstd.data(), w.data(), M, C);
  EXPECT_LT(rel_error(dx, numeric_grad(f, x.data(), x.size())), kTol);
}

TEST(OpsGradcheck, GeluInputGradient) {
  const size_t n = 40;
  auto x = random_vector(n, 17, 4.0), proj = random_vector(n, 18);
  std::vector<double> out(n), dx(n);
  auto f = [&] {
    gelu_forward(out.data(), x.data(), n);
    return dot(proj, out.data());
  };
  gelu_backward(dx.data(), proj.data(), x.data(), n);
  EXPECT_LT(rel_error(dx, numeric_grad(f, x.data(), n)), kTol);
}

// Gradient check of causal attention over B sequences of T tokens with H query heads of size
// hd and Hkv KV heads (grouped-query when fewer).
void check_attention_gradient(int B, int T, int H, int hd, uint32_t stream, int Hkv = 0) {
  if (Hkv == 0) Hkv = H;
  const int dl = H * hd;
  auto qkv = random_vector(B * T * (dl + 2 * Hkv * hd), stream), proj = random_vector(B * T * dl, stream + 1);
  std::vector<double> att(B * T * dl), lse(B * H * T), dqkv(qkv.size());
  auto f = [&] {
    attention_forward(att.data(), lse.data(), qkv.data(), B, T, H, Hkv, hd);
    return dot(proj, att.data());
  };
  f();
  attention_backward(dqkv.data(), proj.data(), qkv.data(), att.data(), lse.data(), B, T, H, Hkv, hd);
  EXPECT_LT(rel_error(dqkv, numeric_grad(f, qkv.data(), qkv.size())), kTol) << "B=" << B << " T=" << T;
}

TEST(OpsGradcheck, CausalAttentionInputGradient) { check_attention_gradient(2, 5, 3, 4, 19); }

TEST(OpsGradcheck, CausalAttentionLongSequence) {
  // T = 130: more than one query block of kAttentionBlock rows, the last one partial
  // (tests/unit/test_attention.cpp compares the blocked kernel with a plain one).
  static_assert(130 > kAttentionBlock && 130 % kAttentionBlock != 0, "the last block should be partial");
  check_attention_gradient(1, 130, 2, 3, 25);
}

TEST(OpsGradcheck, CausalAttentionSingleToken) { check_attention_gradient(3, 1, 2, 4, 27); }

TEST(OpsGradcheck, GroupedQueryAttentionInputGradient) { check_attention_gradient(2, 5, 4, 4, 29, /*Hkv=*/2); }

TEST(OpsGradcheck, AttentionIsCausal) {
  // Changing a later token's k and v must not change an earlier token's output.
  const int B = 1, T = 6, H = 2, hd = 3, dl = H * hd;
  auto qkv = random_vector(T * 3 * dl, 21);
  std::vector<double> a1(T * dl), a2(T * dl), lse(H * T);
  attention_forward(a1.data(), lse.data(), qkv.data(), B, T, H, H, hd);
  for (int j = dl; j < 3 * dl; ++j) qkv[(T - 1) * 3 * dl + j] += 1.0;
  attention_forward(a2.data(), lse.data(), qkv.data(), B, T, H, H, hd);
  for (int i = 0; i < (T - 1) * dl; ++i) EXPECT_EQ(a1[i], a2[i]);
}

// The vocab-parallel cross-entropy pieces on one rank: loss = sum_i w_i (logsumexp_i - logit_i,target).
TEST(OpsGradcheck, CrossEntropyLogitGradientIgnoresPadding) {
  const int M = 5, Vl = 8, valid = 6;
  auto logits = random_vector(M * Vl, 22, 3.0);
  std::vector<int32_t> targets = {0, 5, 3, 1, 2};
  std::vector<double> weight = {0.2, 0.0, 0.3, 0.1, 0.4}, row_max(M), stats(2 * M);
  auto f = [&] {
    vocab_logits_max(row_max.data(), logits.data(), M, Vl, valid);
    vocab_sumexp_and_target(stats.data(), logits.data(), row_max.data(), targets.data(), 0, M, Vl, valid);
    double loss = 0;
    for (int i = 0; i < M; ++i) loss += weight[i] * (std::log(stats[2 * i]) + row_max[i] - stats[2 * i + 1]);
    return loss;
  };
  const auto numeric = numeric_grad(f, logits.data(), logits.size());
  f();
  std::vector<double> grad = logits;
  vocab_cross_entropy_backward(grad.data(), row_max.data(), stats.data(), targets.data(), weight.data(), 0, M, Vl, valid);
  EXPECT_LT(rel_error(grad, numeric), kTol);
  for (int i = 0; i < M; ++i)
    for (int j = valid; j < Vl; ++j) EXPECT_EQ(grad[i * Vl + j], 0.0) << "padding column " << j;
}

TEST(OpsGradcheck, DropoutGradientUsesTheForwardMask) {
  const int M = 7, K = 9;
  const float p = 0.3f;
  const DropoutKey key{5, 3, 11, 100, 0};
  auto x = random_vector(M * K, 23), proj = random_vector(M * K, 24);
  std::vector<double> out(M * K), dx(M * K, 0.0);
  auto f = [&] {
    dropout_forward(out.data(), x.data(), M, K, p, key);
    return dot(proj, out.data());
  };
  dropout_backward(dx.data(), proj.data(), M, K, p, key);
  EXPECT_LT(rel_error(dx, numeric_grad(f, x.data(), x.size())), kTol);
  const long zeros = std::count(out.begin(), out.end(), 0.0);
  EXPECT_GT(zeros, 0);
  EXPECT_LT(zeros, M * K);
}

TEST(OpsGradcheck, DropoutMaskIsLayoutInvariant) {
  // Columns [4, 9) of a 9-wide input, as a TP rank holding features 4.. of it, and rows
  // 2.. as a later micro-batch, see the same mask as the whole tensor.
  const int M = 6, K = 9;
  const DropoutKey whole{9, 1, 2, 50, 0};
  std::vector<double> ones(M * K, 1.0), full(M * K), part((M - 2) * 5), ones_part((M - 2) * 5, 1.0);
  dropout_forward(full.data(), ones.data(), M, K, 0.5f, whole);
  dropout_forward(part.data(), ones_part.data(), M - 2, 5, 0.5f, DropoutKey{9, 1, 2, 52, 4});
  for (int i = 0; i < M - 2; ++i)
    for (int j = 0; j < 5; ++j) EXPECT_EQ(part[i * 5 + j], full[(i + 2) * K + 4 + j]);
}

}  // namespace
}  // namespace lora::test
