// Every CUDA op against its CPU twin (issue 14): the same inputs through model/ops/cpu and
// model/ops/cuda, fp32 results within 1e-5 of the CPU's (relative to the largest reference
// value), bf16-weight GEMMs within 1e-5 too (both backends round the input to bf16 and sum in
// fp32, so only the summation order differs), dropout masks and AdamW steps equal.
// Compiled always; where no GPU is visible (or the build has no CUDA) each test is skipped
// with the reason, which ctest lists as "Skipped".
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "model/dtype.h"
#include "model/nf4_weight.h"
#include "model/param_layout.h"
#include "model/ops/adamw.h"
#include "model/ops/attention.h"
#include "model/ops/cross_entropy.h"
#include "model/ops/dropout.h"
#include "model/ops/embedding.h"
#include "model/ops/gelu.h"
#include "model/ops/grad_norm.h"
#include "model/ops/layernorm.h"
#include "model/ops/linear.h"
#include "model/ops/lora.h"
#include "model/ops/residual.h"
#include "model/ops/rmsnorm.h"
#include "model/ops/rope.h"
#include "model/ops/swiglu.h"

#ifdef LORA_HAVE_CUDA
#include <cstdlib>

#include "model/ops/cuda/cuda_check.h"
#include "model/ops/cuda/device.h"
#include "model/ops/cuda/device_buffer.h"
#include "model/ops/cuda/nf4_dequantize.h"
#endif

namespace lora {
namespace {

using Vec = std::vector<float>;

Vec random_vec(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> d(0.0f, scale);
  Vec v(n);
  for (float& x : v) x = d(gen);
  return v;
}

// max |got - want| / max |want|: the error relative to the tensor's scale.
double rel_error(const Vec& got, const Vec& want) {
  EXPECT_EQ(got.size(), want.size());
  double err = 0, scale = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    err = std::max(err, double(std::abs(got[i] - want[i])));
    scale = std::max(scale, double(std::abs(want[i])));
  }
  return scale > 0 ? err / scale : err;
}

constexpr double kFp32Tol = 1e-5;

#ifndef LORA_HAVE_CUDA

TEST(CudaOps, SkippedWithoutCudaBuild) {
  GTEST_SKIP() << "this build has no CUDA backend (LORA_WITH_CUDA=OFF or no nvcc): CUDA-vs-CPU op tests not built";
}

#else

using cuda::DeviceBuffer;
using DBuf = DeviceBuffer<float>;

class CudaOps : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    if (cuda::device_count(&why) == 0)
      GTEST_SKIP() << "no CUDA device visible (" << why << "): CUDA-vs-CPU op test not run";
    cuda::select_device(0);
  }
};

TEST_F(CudaOps, GeluForwardBackwardAndResidual) {
  const size_t n = 100003;
  const Vec x = random_vec(n, 1, 2.0f), dout = random_vec(n, 2), b = random_vec(n, 3);
  Vec y(n), dx(n), r(n);
  gelu_forward(y.data(), x.data(), n);
  gelu_backward(dx.data(), dout.data(), x.data(), n);
  residual_forward(r.data(), x.data(), b.data(), n);
  DBuf dX(x), dDout(dout), dB(b), dY(n), dDx(n), dR(n);
  cuda::gelu_forward(dY.data(), dX.data(), n);
  cuda::gelu_backward(dDx.data(), dDout.data(), dX.data(), n);
  cuda::residual_forward(dR.data(), dX.data(), dB.data(), n);
  EXPECT_LT(rel_error(dY.download(), y), kFp32Tol);
  EXPECT_LT(rel_error(dDx.download(), dx), kFp32Tol);
  EXPECT_EQ(dR.download(), r);
}

TEST_F(CudaOps, DropoutDrawsTheSameMasks) {
  const int M = 37, K = 130;
  const DropoutKey key{1234, 7, 5, 96, 256};
  // dx starts at 0, so dx += dout * scale is one rounding whether or not a compiler fuses it
  // into an FMA (nvcc does; GCC may with -march=native): the comparison can be exact.
  const Vec x = random_vec(size_t(M) * K, 4), dout = random_vec(size_t(M) * K, 5), dx0(size_t(M) * K, 0.0f);
  Vec y(x.size()), dx = dx0;
  dropout_forward(y.data(), x.data(), M, K, 0.3f, key);
  dropout_backward(dx.data(), dout.data(), M, K, 0.3f, key);
  DBuf dX(x), dDout(dout), dDx(dx0), dY(x.size());
  cuda::dropout_forward(dY.data(), dX.data(), M, K, 0.3f, key);
  cuda::dropout_backward(dDx.data(), dDout.data(), M, K, 0.3f, key);
  EXPECT_EQ(dY.download(), y);  // the same elements dropped, the same products
  EXPECT_EQ(dDx.download(), dx);
  EXPECT_GT(std::count(y.begin(), y.end(), 0.0f), 0);
}

TEST_F(CudaOps, LayerNormForwardBackwardAndParams) {
  const int M = 19, C = 770;
  const Vec x = random_vec(size_t(M) * C, 7, 3.0f), w = random_vec(C, 8), b = random_vec(C, 9),
            dout = random_vec(size_t(M) * C, 10), dx0 = random_vec(size_t(M) * C, 11), dw0 = random_vec(C, 12),
            db0 = random_vec(C, 13);
  Vec out(x.size()), mean(M), rstd(M), dx = dx0, dw = dw0, db = db0;
  layernorm_forward(out.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), M, C, 1e-5f);
  layernorm_backward(dx.data(), dout.data(), x.data(), mean.data(), rstd.data(), w.data(), M, C);
  layernorm_backward_params(dw.data(), db.data(), dout.data(), x.data(), mean.data(), rstd.data(), M, C);
  DBuf dX(x), dW(w), dBias(b), dDout(dout), dDx(dx0), dDw(dw0), dDb(db0), dOut(x.size()), dMean(M), dRstd(M);
  cuda::layernorm_forward(dOut.data(), dMean.data(), dRstd.data(), dX.data(), dW.data(), dBias.data(), M, C, 1e-5f);
  cuda::layernorm_backward(dDx.data(), dDout.data(), dX.data(), dMean.data(), dRstd.data(), dW.data(), M, C);
  cuda::layernorm_backward_params(dDw.data(), dDb.data(), dDout.data(), dX.data(), dMean.data(), dRstd.data(), M, C);
  EXPECT_LT(rel_error(dOut.download(), out), kFp32Tol);
  EXPECT_LT(rel_error(dMean.download(), mean), kFp32Tol);
  EXPECT_LT(rel_error(dRstd.download(), rstd), kFp32Tol);
  EXPECT_LT(rel_error(dDx.download(), dx), kFp32Tol);
  EXPECT_LT(rel_error(dDw.download(), dw), kFp32Tol);
  EXPECT_LT(rel_error(dDb.download(), db), kFp32Tol);
}

// The Llama family's ops: RMSNorm (rows of 770, wider than a block), fused SwiGLU, RoPE with
// llama3 scaling on the q and k heads of qkv rows (v left alone) at a position offset.
TEST_F(CudaOps, RmsNormSwigluAndRope) {
  const int M = 19, C = 770;
  const Vec x = random_vec(size_t(M) * C, 60, 3.0f), w = random_vec(C, 61), dout = random_vec(size_t(M) * C, 62),
            dx0 = random_vec(size_t(M) * C, 63), dw0 = random_vec(C, 64);
  Vec out(x.size()), rrms(M), dx = dx0, dw = dw0;
  rmsnorm_forward(out.data(), rrms.data(), x.data(), w.data(), M, C, 1e-5f);
  rmsnorm_backward(dx.data(), dout.data(), x.data(), rrms.data(), w.data(), M, C);
  rmsnorm_backward_weight(dw.data(), dout.data(), x.data(), rrms.data(), M, C);
  DBuf dX(x), dW(w), dDout(dout), dDx(dx0), dDw(dw0), dOut(x.size()), dR(M);
  cuda::rmsnorm_forward(dOut.data(), dR.data(), dX.data(), dW.data(), M, C, 1e-5f);
  cuda::rmsnorm_backward(dDx.data(), dDout.data(), dX.data(), dR.data(), dW.data(), M, C);
  cuda::rmsnorm_backward_weight(dDw.data(), dDout.data(), dX.data(), dR.data(), M, C);
  EXPECT_LT(rel_error(dOut.download(), out), kFp32Tol);
  EXPECT_LT(rel_error(dR.download(), rrms), kFp32Tol);
  EXPECT_LT(rel_error(dDx.download(), dx), kFp32Tol);
  EXPECT_LT(rel_error(dDw.download(), dw), kFp32Tol);

  const int F = 333;  // rows of h are [gate | up]
  const Vec h = random_vec(size_t(M) * 2 * F, 65, 4.0f), dg = random_vec(size_t(M) * F, 66);
  Vec g(size_t(M) * F), dh(h.size());
  swiglu_forward(g.data(), h.data(), M, F);
  swiglu_backward(dh.data(), dg.data(), h.data(), M, F);
  DBuf dH(h), dDg(dg), dG(g.size()), dDh(h.size());
  cuda::swiglu_forward(dG.data(), dH.data(), M, F);
  cuda::swiglu_backward(dDh.data(), dDg.data(), dH.data(), M, F);
  EXPECT_LT(rel_error(dG.download(), g), kFp32Tol);
  EXPECT_LT(rel_error(dDh.download(), dh), kFp32Tol);

  const int B = 2, Tn = 9, heads = 6, hd = 16, ld = heads * hd + 2 * hd, pos0 = 5;  // 4 q + 2 k heads, then v
  const std::vector<double> inv = rope_inv_freq(hd, 10000, RopeScaling{8, 1, 4, 32});
  Vec cos(size_t(pos0 + Tn) * hd / 2), sin(cos.size());
  rope_tables(cos.data(), sin.data(), inv, 0, pos0 + Tn);
  const size_t at = size_t(pos0) * hd / 2;
  const Vec q = random_vec(size_t(B) * Tn * ld, 67);
  Vec fwd = q, bwd = q;
  rope_forward(fwd.data(), cos.data() + at, sin.data() + at, B * Tn, Tn, heads, hd, ld);
  rope_backward(bwd.data(), cos.data() + at, sin.data() + at, B * Tn, Tn, heads, hd, ld);
  DBuf dCos(cos), dSin(sin), dFwd(q), dBwd(q);
  cuda::rope_forward(dFwd.data(), dCos.data() + at, dSin.data() + at, B * Tn, Tn, heads, hd, ld);
  cuda::rope_backward(dBwd.data(), dCos.data() + at, dSin.data() + at, B * Tn, Tn, heads, hd, ld);
  EXPECT_LT(rel_error(dFwd.download(), fwd), kFp32Tol);
  EXPECT_LT(rel_error(dBwd.download(), bwd), kFp32Tol);
}

TEST_F(CudaOps, AdamWStepsAndGradientNorm) {
  const size_t n = 5000;
  Vec p = random_vec(n, 14), g = random_vec(n, 15), m = random_vec(n, 16, 0.1f), v(n);
  for (size_t i = 0; i < n; ++i) v[i] = std::abs(random_vec(1, 17 + i)[0]) * 0.01f;
  DBuf dP(p), dG(g), dM(m), dV(v);
  for (long t = 1; t <= 3; ++t) {
    adamw_update(p.data(), g.data(), m.data(), v.data(), n, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, t);
    cuda::adamw_update(dP.data(), dG.data(), dM.data(), dV.data(), n, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, t);
  }
  EXPECT_LT(rel_error(dP.download(), p), kFp32Tol);
  EXPECT_LT(rel_error(dM.download(), m), kFp32Tol);
  EXPECT_LT(rel_error(dV.download(), v), kFp32Tol);
  const double cpu = sum_of_squares(g.data(), n), gpu = cuda::sum_of_squares(dG.data(), n);
  EXPECT_LT(std::abs(gpu - cpu) / cpu, 1e-12);
  scale_in_place(g.data(), n, 0.37f);
  cuda::scale_in_place(dG.data(), n, 0.37f);
  EXPECT_EQ(dG.download(), g);
}

TEST_F(CudaOps, EmbeddingAndPositionsInFp32AndBf16) {
  const int B = 3, Tn = 11, M = B * Tn, d = 64, V = 50, Vl = 20, v0 = 20, P = 16;
  std::vector<int32_t> tokens(M);
  for (int i = 0; i < M; ++i) tokens[i] = (i * 7) % V;  // some in this rank's slice, some not, repeats
  const Vec wte = random_vec(size_t(Vl) * d, 18), wpe = random_vec(size_t(P) * d, 19), dx = random_vec(size_t(M) * d, 20);
  std::vector<uint16_t> wte16(wte.size());
  for (size_t i = 0; i < wte.size(); ++i) wte16[i] = float_to_bf16(wte[i]);
  DeviceBuffer<int32_t> dTok(tokens);
  DeviceBuffer<uint16_t> dWte16(wte16);
  DBuf dWte(wte), dWpe(wpe), dDx(dx), dX(size_t(M) * d), dX16(size_t(M) * d), dGwte(Vec(wte.size(), 0.0f)),
      dGwpe(Vec(wpe.size(), 0.0f));
  Vec x(size_t(M) * d), x16(x.size()), gwte(wte.size(), 0.0f), gwpe(wpe.size(), 0.0f);
  embedding_forward<float>(x.data(), tokens.data(), wte.data(), v0, Vl, M, d);
  add_positions<float>(x.data(), wpe.data(), B, Tn, d, 2);
  embedding_forward<float>(x16.data(), tokens.data(), wte16.data(), v0, Vl, M, d);
  embedding_backward(gwte.data(), dx.data(), tokens.data(), v0, Vl, M, d);
  positions_backward(gwpe.data(), dx.data(), B, Tn, d, 2);
  cuda::embedding_forward<float>(dX.data(), dTok.data(), dWte.data(), v0, Vl, M, d);
  cuda::add_positions<float>(dX.data(), dWpe.data(), B, Tn, d, 2);
  cuda::embedding_forward<float>(dX16.data(), dTok.data(), dWte16.data(), v0, Vl, M, d);
  cuda::embedding_backward(dGwte.data(), dDx.data(), dTok.data(), v0, Vl, M, d);
  cuda::positions_backward(dGwpe.data(), dDx.data(), B, Tn, d, 2);
  EXPECT_EQ(dX.download(), x);
  EXPECT_EQ(dX16.download(), x16);
  EXPECT_EQ(dGwte.download(), gwte);  // rows summed in the same order on both
  EXPECT_EQ(dGwpe.download(), gwpe);
}

TEST_F(CudaOps, VocabParallelCrossEntropy) {
  const int M = 13, Vl = 1000, valid = 937, v0 = 1000;
  const Vec logits = random_vec(size_t(M) * Vl, 21, 4.0f), weight = random_vec(M, 22);
  std::vector<int32_t> targets(M);
  for (int i = 0; i < M; ++i) targets[i] = 900 + i * 61;  // some in [v0, v0 + valid), some outside
  Vec row_max(M), stats(2 * M), grad = logits;
  vocab_logits_max(row_max.data(), logits.data(), M, Vl, valid);
  vocab_sumexp_and_target(stats.data(), logits.data(), row_max.data(), targets.data(), v0, M, Vl, valid);
  vocab_cross_entropy_backward(grad.data(), row_max.data(), stats.data(), targets.data(), weight.data(), v0, M, Vl,
                               valid);
  DeviceBuffer<int32_t> dT(targets);
  DBuf dL(logits), dW(weight), dMax(M), dStats(2 * M);
  cuda::vocab_logits_max(dMax.data(), dL.data(), M, Vl, valid);
  cuda::vocab_sumexp_and_target(dStats.data(), dL.data(), dMax.data(), dT.data(), v0, M, Vl, valid);
  cuda::vocab_cross_entropy_backward(dL.data(), dMax.data(), dStats.data(), dT.data(), dW.data(), v0, M, Vl, valid);
  EXPECT_EQ(dMax.download(), row_max);
  EXPECT_LT(rel_error(dStats.download(), stats), kFp32Tol);
  EXPECT_LT(rel_error(dL.download(), grad), kFp32Tol);
}

// y = x W^T + b, dx = dy W, dW += dy^T x, db += colsum(dy): fp32 weights and bf16 weights.
TEST_F(CudaOps, FrozenLinearInFp32AndBf16AndWeightGradient) {
  const int M = 67, K = 192, N = 320;
  const Vec x = random_vec(size_t(M) * K, 23), w = random_vec(size_t(N) * K, 24, 0.05f), bias = random_vec(N, 25),
            dy = random_vec(size_t(M) * N, 26), dx0 = random_vec(size_t(M) * K, 27),
            dW0 = random_vec(size_t(N) * K, 28), db0 = random_vec(N, 29);
  std::vector<uint16_t> w16(w.size());
  for (size_t i = 0; i < w.size(); ++i) w16[i] = float_to_bf16(w[i]);
  DeviceBuffer<uint16_t> dW16(w16);
  DBuf dX(x), dW(w), dBias(bias), dDy(dy), dY(size_t(M) * N), dY16(size_t(M) * N), dDx(dx0), dDx16(dx0), dDW(dW0),
      dDb(db0);
  for (bool bf16 : {false, true}) {
    const WeightView<float> wv = bf16 ? WeightView<float>(w16.data()) : WeightView<float>(w.data());
    const WeightView<float> dwv = bf16 ? WeightView<float>(dW16.data()) : WeightView<float>(dW.data());
    Vec y(size_t(M) * N), dx = dx0;
    linear_forward<float>(y.data(), x.data(), wv, bias.data(), M, K, N);
    linear_backward_input<float>(dx.data(), dy.data(), wv, M, K, N, /*accumulate=*/true);
    DBuf& gy = bf16 ? dY16 : dY;
    DBuf& gdx = bf16 ? dDx16 : dDx;
    cuda::linear_forward<float>(gy.data(), dX.data(), dwv, dBias.data(), M, K, N);
    cuda::linear_backward_input<float>(gdx.data(), dDy.data(), dwv, M, K, N, true);
    EXPECT_LT(rel_error(gy.download(), y), kFp32Tol) << (bf16 ? "bf16" : "fp32");
    EXPECT_LT(rel_error(gdx.download(), dx), kFp32Tol) << (bf16 ? "bf16" : "fp32");
  }
  Vec dWc = dW0, dbc = db0;
  linear_backward_weight(dWc.data(), dbc.data(), dy.data(), x.data(), M, K, N);
  cuda::linear_backward_weight(dDW.data(), dDb.data(), dDy.data(), dX.data(), M, K, N);
  EXPECT_LT(rel_error(dDW.download(), dWc), kFp32Tol);
  EXPECT_LT(rel_error(dDb.download(), dbc), kFp32Tol);
}

// model.dtype nf4 on the device: the shard dequantized on the GPU equals the CPU's values
// exactly (fp32 out); the frozen GEMMs run as QLoRA's on a GPU, the block of rows dequantized to
// bf16 and the input rounded to bf16, so they equal the CPU's bf16 GEMM on the bf16-rounded
// dequantized weights within 1e-5 (only the summation order differs).
TEST_F(CudaOps, FrozenLinearInNf4) {
  const int M = 67, K = 192, N = 1100;
  ParamLayout p;
  const TensorSpec& s = p.add("w", N, K, Shard::Rows, 1, DType::NF4);
  const Vec w = random_vec(size_t(N) * K, 40, 0.05f), x = random_vec(size_t(M) * K, 41), dy = random_vec(size_t(M) * N, 42),
            dx0 = random_vec(size_t(M) * K, 43);
  std::vector<uint8_t> shard(s.nf4.bytes);
  Vec absmax(size_t(N) * K / 64), deq(w.size());
  nf4_quantize_local(s, 0, w.data(), shard.data(), absmax.data());
  nf4_finish_local(s, 1, 0, absmax.data(), shard.data());
  nf4_dequantize_rows(shard.data(), s.nf4, 0, N, deq.data());
  DeviceBuffer<uint8_t> dShard(shard);
  DBuf dDeq(w.size());
  cuda::nf4_dequantize_rows_f32(dDeq.data(), dShard.data(), s.nf4, 0, N);
  EXPECT_EQ(dDeq.download(), deq);
  std::vector<uint16_t> deq16(deq.size());
  for (size_t i = 0; i < deq.size(); ++i) deq16[i] = float_to_bf16(deq[i]);
  Vec y(size_t(M) * N), dx = dx0;
  linear_forward<float>(y.data(), x.data(), WeightView<float>(deq16.data()), nullptr, M, K, N);
  linear_backward_input<float>(dx.data(), dy.data(), WeightView<float>(deq16.data()), M, K, N, true);
  DBuf dX(x), dDy(dy), dY(size_t(M) * N), dDx(dx0);
  const WeightView<float> q(dShard.data(), &s.nf4);
  cuda::linear_forward<float>(dY.data(), dX.data(), q, nullptr, M, K, N);
  cuda::linear_backward_input<float>(dDx.data(), dDy.data(), q, M, K, N, true);
  EXPECT_LT(rel_error(dY.download(), y), kFp32Tol);
  EXPECT_LT(rel_error(dDx.download(), dx), kFp32Tol);
}

// The LoRA branch writing into a column block of a wider row (q inside the fused qkv).
TEST_F(CudaOps, LoraForwardBackwardAndMerge) {
  const int M = 45, K = 96, N = 80, r = 8, ldy = 3 * N;
  const float s = 2.0f;
  const Vec x = random_vec(size_t(M) * K, 30), A = random_vec(size_t(r) * K, 31), Bm = random_vec(size_t(N) * r, 32),
            y0 = random_vec(size_t(M) * ldy, 33), dy = random_vec(size_t(M) * ldy, 34),
            dx0 = random_vec(size_t(M) * K, 35), dA0 = random_vec(A.size(), 36), dB0 = random_vec(Bm.size(), 37),
            W0 = random_vec(size_t(N) * K, 38);
  Vec y = y0, u(size_t(M) * r), du(u.size()), dx = dx0, dA = dA0, dB = dB0, W = W0;
  lora_forward(y.data(), ldy, u.data(), x.data(), A.data(), Bm.data(), M, K, N, r, s);
  lora_backward(dx.data(), dA.data(), dB.data(), du.data(), dy.data(), ldy, x.data(), u.data(), A.data(), Bm.data(), M,
                K, N, r, s);
  lora_merge(W.data(), A.data(), Bm.data(), K, N, r, s);
  DBuf gx(x), gA(A), gB(Bm), gy(y0), gdy(dy), gdx(dx0), gdA(dA0), gdB(dB0), gW(W0), gu(u.size()), gdu(u.size());
  cuda::lora_forward(gy.data(), ldy, gu.data(), gx.data(), gA.data(), gB.data(), M, K, N, r, s);
  cuda::lora_backward(gdx.data(), gdA.data(), gdB.data(), gdu.data(), gdy.data(), ldy, gx.data(), gu.data(), gA.data(),
                      gB.data(), M, K, N, r, s);
  cuda::lora_merge(gW.data(), gA.data(), gB.data(), K, N, r, s);
  EXPECT_LT(rel_error(gy.download(), y), kFp32Tol);
  EXPECT_LT(rel_error(gu.download(), u), kFp32Tol);
  EXPECT_LT(rel_error(gdu.download(), du), kFp32Tol);
  EXPECT_LT(rel_error(gdx.download(), dx), kFp32Tol);
  EXPECT_LT(rel_error(gdA.download(), dA), kFp32Tol);
  EXPECT_LT(rel_error(gdB.download(), dB), kFp32Tol);
  EXPECT_LT(rel_error(gW.download(), W), kFp32Tol);
}

// T = 1, T below one block, and T not a multiple of the CPU's 64-row blocks; hd 32 and 64;
// grouped-query (4 query heads on 2 KV heads, 6 on 1).
TEST_F(CudaOps, CausalAttentionForwardBackwardAndCached) {
  struct Shape { int B, Tn, Hl, Hkv, hd; };
  for (const Shape sh : {Shape{2, 1, 3, 3, 32}, Shape{1, 40, 2, 2, 64}, Shape{2, 131, 3, 3, 64}, Shape{2, 67, 4, 2, 64},
                         Shape{1, 33, 6, 1, 32}}) {
    const int dl = sh.Hl * sh.hd, kvl = sh.Hkv * sh.hd, ld = dl + 2 * kvl, M = sh.B * sh.Tn;
    const Vec qkv = random_vec(size_t(M) * ld, 40 + sh.Tn), datt = random_vec(size_t(M) * dl, 41 + sh.Tn);
    Vec att(size_t(M) * dl), lse(size_t(sh.B) * sh.Hl * sh.Tn), dqkv(qkv.size());
    attention_forward(att.data(), lse.data(), qkv.data(), sh.B, sh.Tn, sh.Hl, sh.Hkv, sh.hd);
    attention_backward(dqkv.data(), datt.data(), qkv.data(), att.data(), lse.data(), sh.B, sh.Tn, sh.Hl, sh.Hkv, sh.hd);
    DBuf gqkv(qkv), gdatt(datt), gatt(att.size()), glse(lse.size()), gdqkv(Vec(qkv.size(), 7.0f));  // overwritten
    cuda::attention_forward(gatt.data(), glse.data(), gqkv.data(), sh.B, sh.Tn, sh.Hl, sh.Hkv, sh.hd);
    cuda::attention_backward(gdqkv.data(), gdatt.data(), gqkv.data(), gatt.data(), glse.data(), sh.B, sh.Tn, sh.Hl,
                             sh.Hkv, sh.hd);
    const std::string what = "B " + std::to_string(sh.B) + " T " + std::to_string(sh.Tn) + " Hl " + std::to_string(sh.Hl) +
                             " Hkv " + std::to_string(sh.Hkv) + " hd " + std::to_string(sh.hd);
    EXPECT_LT(rel_error(gatt.download(), att), kFp32Tol) << what;
    EXPECT_LT(rel_error(glse.download(), lse), kFp32Tol) << what;
    EXPECT_LT(rel_error(gdqkv.download(), dqkv), kFp32Tol) << what;

    // Decoding: the last n rows of sequence 0 against a cache holding its keys and values.
    const int n = std::min(sh.Tn, 5), pos0 = sh.Tn - n;
    Vec kc(size_t(sh.Tn) * kvl), vc(kc.size()), catt(size_t(n) * dl);
    for (int t = 0; t < sh.Tn; ++t)
      for (int c = 0; c < kvl; ++c) {
        kc[size_t(t) * kvl + c] = qkv[size_t(t) * ld + dl + c];
        vc[size_t(t) * kvl + c] = qkv[size_t(t) * ld + dl + kvl + c];
      }
    const float* q = qkv.data() + size_t(pos0) * ld;
    attention_forward_cached(catt.data(), q, ld, kc.data(), vc.data(), n, pos0, sh.Hl, sh.Hkv, sh.hd);
    DBuf gkc(kc), gvc(vc), gcatt(catt.size());
    cuda::attention_forward_cached(gcatt.data(), gqkv.data() + size_t(pos0) * ld, ld, gkc.data(), gvc.data(), n,
                                   pos0, sh.Hl, sh.Hkv, sh.hd);
    EXPECT_LT(rel_error(gcatt.download(), catt), kFp32Tol) << what;
  }
}

// These run without a GPU: the checks and the device choice are host code.
TEST(CudaHost, ErrorsNameTheCallFileAndLine) {
  try {
    LORA_CUDA_CHECK(cudaSetDevice(1 << 20));  // no such device, with or without a GPU
    FAIL() << "cudaSetDevice of device 1048576 succeeded";
  } catch (const cuda::CudaError& e) {
    const std::string what = e.what();
    std::printf("the message: %s\n", what.c_str());
    EXPECT_NE(what.find("cudaSetDevice(1 << 20)"), std::string::npos) << what;
    EXPECT_NE(what.find("test_cuda_ops.cpp:"), std::string::npos) << what;
  }
  cudaGetLastError();  // clear it, or the next kernel launch check in this process would report it
  try {
    cuda::check(CUBLAS_STATUS_NOT_INITIALIZED, "cublasSgemm(h, ...)", "linear.cu", 42);
    FAIL() << "a failed cuBLAS status passed";
  } catch (const cuda::CudaError& e) {
    const std::string what = e.what();
    EXPECT_EQ(what.rfind("cuBLAS error CUBLAS_STATUS_NOT_INITIALIZED (", 0), 0u) << what;
    EXPECT_NE(what.find(") in cublasSgemm(h, ...) at linear.cu:42"), std::string::npos) << what;
  }
}

TEST(CudaHost, DeviceFromTheNodeLocalRank) {
  unsetenv("OMPI_COMM_WORLD_LOCAL_RANK");
  unsetenv("MPI_LOCALRANKID");
  setenv("SLURM_LOCALID", "3", 1);
  EXPECT_EQ(cuda::local_rank_from_env(), 3);
  setenv("OMPI_COMM_WORLD_LOCAL_RANK", "5", 1);  // mpirun inside an allocation: Open MPI's wins
  EXPECT_EQ(cuda::local_rank_from_env(), 5);
  unsetenv("OMPI_COMM_WORLD_LOCAL_RANK");
  unsetenv("SLURM_LOCALID");
  EXPECT_EQ(cuda::local_rank_from_env(), 0);
  std::string why;
  if (cuda::device_count(&why) == 0) {
    EXPECT_FALSE(why.empty());
    EXPECT_THROW(cuda::select_device(0), cuda::CudaError);
  } else {
    EXPECT_EQ(cuda::select_device(0), 0);
    EXPECT_NE(cuda::device_description().find("sm_"), std::string::npos);
  }
}

#endif  // LORA_HAVE_CUDA

}  // namespace
}  // namespace lora
