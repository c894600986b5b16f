// The Llama family's parts that GPT does not have, each on its own: RMSNorm, the SwiGLU gate
// and rotary position embedding (model/ops/rmsnorm.h, swiglu.h, rope.h). Backward against
// central differences in double; RoPE (with Llama 3.1's frequency scaling, all three bands
// active) against a PyTorch reference written from Hugging Face's formulas.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "gradcheck.h"
#include "model/ops/rmsnorm.h"
#include "model/ops/rope.h"
#include "model/ops/swiglu.h"
#include "unique_temp_path.h"

namespace lora::test {
namespace {

constexpr double kTol = 1e-6;

TEST(LlamaOpsGradcheck, RmsNormInputAndWeightGradients) {
  const int M = 4, C = 9;
  auto x = random_vector(M * C, 51, 2.0), w = random_vector(C, 52), proj = random_vector(M * C, 53);
  std::vector<double> out(M * C), rrms(M), dx(M * C, 0.125), dw(C, -0.25);  // non-zero: both accumulate
  auto f = [&] {
    rmsnorm_forward(out.data(), rrms.data(), x.data(), w.data(), M, C, 1e-5f);
    return dot(proj, out.data());
  };
  f();
  rmsnorm_backward(dx.data(), proj.data(), x.data(), rrms.data(), w.data(), M, C);
  rmsnorm_backward_weight(dw.data(), proj.data(), x.data(), rrms.data(), M, C);
  auto nx = numeric_grad(f, x.data(), x.size()), nw = numeric_grad(f, w.data(), w.size());
  for (auto& v : nx) v += 0.125;
  for (auto& v : nw) v -= 0.25;
  EXPECT_LT(rel_error(dx, nx), kTol);
  EXPECT_LT(rel_error(dw, nw), kTol);
  // No mean is subtracted: a constant row keeps its sign, unlike LayerNorm's zero.
  std::vector<double> ones(C, 3.0), unit(C, 1.0), o(C), r(1);
  rmsnorm_forward(o.data(), r.data(), ones.data(), unit.data(), 1, C, 0.0f);
  EXPECT_NEAR(o[0], 1.0, 1e-12);
}

TEST(LlamaOpsGradcheck, SwigluGateAndUpGradients) {
  const int M = 3, F = 7;  // rows of h are [gate | up]
  auto h = random_vector(size_t(M) * 2 * F, 54, 4.0), proj = random_vector(size_t(M) * F, 56);
  std::vector<double> out(size_t(M) * F), dh(h.size(), 9.0);  // overwritten
  auto f = [&] {
    swiglu_forward(out.data(), h.data(), M, F);
    return dot(proj, out.data());
  };
  swiglu_backward(dh.data(), proj.data(), h.data(), M, F);
  EXPECT_LT(rel_error(dh, numeric_grad(f, h.data(), h.size())), kTol);
  // silu(gate) * up, element by element: row 1, column 2.
  const double a = h[1 * 2 * F + 2], u = h[1 * 2 * F + F + 2];
  f();
  EXPECT_NEAR(out[1 * F + 2], a / (1 + std::exp(-a)) * u, 1e-14);
}

TEST(LlamaOpsGradcheck, RopeInputGradient) {
  // rows = B * T: both sequences start at position 0; the rows are nh heads plus 5 columns
  // rope leaves alone (as v in a qkv row).
  const int B = 2, T = 5, nh = 3, hd = 8, ld = nh * hd + 5;
  const RopeScaling scaling{8, 1, 4, 16};
  const std::vector<double> inv = rope_inv_freq(hd, 10000, scaling);
  std::vector<double> cos(T * hd / 2), sin(T * hd / 2);
  rope_tables(cos.data(), sin.data(), inv, 0, T);
  auto x = random_vector(B * T * ld, 57), proj = random_vector(x.size(), 58);
  std::vector<double> y(x.size());
  auto f = [&] {
    y = x;
    rope_forward(y.data(), cos.data(), sin.data(), B * T, T, nh, hd, ld);
    return dot(proj, y.data());
  };
  std::vector<double> dx = proj;
  rope_backward(dx.data(), cos.data(), sin.data(), B * T, T, nh, hd, ld);
  EXPECT_LT(rel_error(dx, numeric_grad(f, x.data(), x.size())), kTol);
  f();
  for (int r = 0; r < B * T; ++r)  // the columns past the heads are untouched
    for (int c = nh * hd; c < ld; ++c) EXPECT_EQ(y[size_t(r) * ld + c], x[size_t(r) * ld + c]);
}

// head_dim 16, theta 10000, llama3 scaling with original_max_position_embeddings 64: the
// wavelengths 2 pi / inv_freq are 6.3 (< 64/4: unchanged), 19.9 and 62.8 (between: smoothed)
// and 199 and up (> 64/1: divided by the factor), so every band is checked. Sequences of 7
// positions, 2 of them, 3 heads; plain RoPE (no scaling) with theta 500000 too.
TEST(LlamaOps, RopeEqualsTheHuggingFaceFormulasInPyTorch) {
  const int hd = 16, T = 7, nh = 3, rows = 2 * T;
  for (const bool scaled : {true, false}) {
    const double theta = scaled ? 10000 : 500000;
    const RopeScaling scaling = scaled ? RopeScaling{8, 1, 4, 64} : RopeScaling{};
    const auto x = random_vector(size_t(rows) * nh * hd, scaled ? 59 : 60);
    nlohmann::json in = {{"head_dim", hd}, {"theta", theta}, {"T", T}, {"n_heads", nh}, {"x", x}};
    in["scaling"] = scaled ? nlohmann::json{{"factor", 8}, {"low_freq_factor", 1}, {"high_freq_factor", 4},
                                            {"original_max_position_embeddings", 64}}
                           : nlohmann::json(nullptr);
    const std::string path = unique_temp_path(scaled ? "rope_in_scaled.json" : "rope_in.json").string();
    std::ofstream(path) << in.dump();
    const std::string cmd = "/usr/bin/python3 " + std::string(LORA_SOURCE_DIR) + "/tests/torch/rope_reference.py " + path;
    FILE* pipe = popen(cmd.c_str(), "r");
    ASSERT_NE(pipe, nullptr);
    std::string text;
    char buf[4096];
    for (size_t n; (n = fread(buf, 1, sizeof buf, pipe)) > 0;) text.append(buf, n);
    ASSERT_EQ(pclose(pipe), 0) << cmd;
    std::remove(path.c_str());
    const auto ref = nlohmann::json::parse(text);
    const auto ref_inv = ref["inv_freq"].get<std::vector<double>>(), ref_out = ref["out"].get<std::vector<double>>();

    const std::vector<double> inv = rope_inv_freq(hd, theta, scaling);
    EXPECT_LT(rel_error(inv, ref_inv), 1e-12) << "scaled " << scaled;
    if (scaled) {  // the bands: unchanged, smoothed (strictly between), divided by the factor
      const auto plain = rope_inv_freq(hd, theta, RopeScaling{});
      EXPECT_DOUBLE_EQ(inv[0], plain[0]);
      EXPECT_LT(inv[1], plain[1]);
      EXPECT_GT(inv[1], plain[1] / 8);
      EXPECT_DOUBLE_EQ(inv[7], plain[7] / 8);
    }
    std::vector<double> cos(T * hd / 2), sin(T * hd / 2), y = x;
    rope_tables(cos.data(), sin.data(), inv, 0, T);
    rope_forward(y.data(), cos.data(), sin.data(), rows, T, nh, hd, nh * hd);
    EXPECT_LT(rel_error(y, ref_out), 1e-12) << "scaled " << scaled;
    // Position 0 is the identity; later positions move.
    EXPECT_EQ(std::vector<double>(y.begin(), y.begin() + nh * hd), std::vector<double>(x.begin(), x.begin() + nh * hd));
    EXPECT_GT(rel_error(y, x), 0.1);
  }
}

}  // namespace
}  // namespace lora::test
