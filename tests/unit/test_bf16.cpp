// model.dtype bf16 and the frozen-weight GEMM engine (model/ops/cpu/frozen_gemm.h):
// bf16 rounding, oneDNN fp32 against OpenBLAS, bf16 GEMMs against a reference computed from
// the bf16-rounded operands, the frozen bytes halving, reading a file into bf16, and the
// first-step loss of a bf16 model against fp32.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cmath>
#include <cstdio>
#include <limits>
#include <vector>

#include "comm/mpi_communicator.h"
#include "io/base_weights.h"
#include "model/gpt.h"
#include "model/memory_estimate.h"
#include "model/ops/cpu/frozen_gemm.h"
#include "model/ops/linear.h"
#include "model/rng.h"
#include "tests/model_shape.h"

namespace lora {
namespace {

std::vector<float> random_vec(size_t n, uint64_t seed, double scale = 1.0) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<float>(normal_element(seed, RngPurpose::BaseInit, 7, i, scale));
  return v;
}

double rel_err(const std::vector<float>& a, const std::vector<double>& ref) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) num += (a[i] - ref[i]) * (a[i] - ref[i]), den += ref[i] * ref[i];
  return std::sqrt(num / den);
}
double rel_err(const std::vector<float>& a, const std::vector<float>& b) {
  return rel_err(a, std::vector<double>(b.begin(), b.end()));
}

struct EngineGuard {  // restores the process-wide engine choice
  FrozenGemmEngine saved = frozen_gemm_engine();
  ~EngineGuard() { set_frozen_gemm_engine(saved); }
};

TEST(Bf16, RoundsToNearestEven) {
  EXPECT_EQ(float_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(float_to_bf16(1.0f + std::ldexp(1.0f, -8)), 0x3f80);      // tie, 1.0 is even: down
  EXPECT_EQ(float_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3f82);  // tie, 0x3f81 odd: up to 0x3f82
  EXPECT_EQ(float_to_bf16(1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -20)), 0x3f81);  // above the tie
  EXPECT_EQ(float_to_bf16(-2.0f), 0xc000);
  EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16(std::numeric_limits<float>::quiet_NaN()))));
  EXPECT_TRUE(std::isinf(bf16_to_float(float_to_bf16(std::numeric_limits<float>::infinity()))));
  EXPECT_EQ(bf16_to_float(float_to_bf16(3.5f)), 3.5f);
}

// Shapes of the model's GEMMs, with odd sizes: forward (NT) and input gradient (NN, = and +=).
const int kShapes[][3] = {{64, 96, 128}, {37, 200, 72}, {130, 300, 1030}};

TEST(FrozenGemm, OneDnnFp32MatchesOpenBlas) {
  EngineGuard g;
  for (const auto& s : kShapes) {
    const int M = s[0], K = s[1], N = s[2];
    const auto x = random_vec(size_t(M) * K, 1), w = random_vec(size_t(N) * K, 2), dy = random_vec(size_t(M) * N, 3);
    std::vector<float> y[2], dx[2], dxa[2];
    for (int e = 0; e < 2; ++e) {
      set_frozen_gemm_engine(e ? FrozenGemmEngine::OpenBLAS : FrozenGemmEngine::OneDNN);
      y[e].assign(size_t(M) * N, 0);
      dx[e].assign(size_t(M) * K, 0);
      dxa[e] = random_vec(size_t(M) * K, 4);
      linear_forward<float>(y[e].data(), x.data(), w.data(), nullptr, M, K, N);
      linear_backward_input<float>(dx[e].data(), dy.data(), w.data(), M, K, N, false);
      linear_backward_input<float>(dxa[e].data(), dy.data(), w.data(), M, K, N, true);
    }
    EXPECT_LT(rel_err(y[0], y[1]), 1e-5) << M << "x" << K << "x" << N;
    EXPECT_LT(rel_err(dx[0], dx[1]), 1e-5) << M << "x" << K << "x" << N;
    EXPECT_LT(rel_err(dxa[0], dxa[1]), 1e-5) << M << "x" << K << "x" << N;
  }
  std::printf("fp32 frozen GEMM kernel: %s\n", frozen_gemm_kernel(DType::F32).c_str());
}

// bf16 W: the result must be the product of the bf16-rounded input and the bf16 weights
// with fp32 sums, whichever engine and path (native bf16 or widened blocks) this CPU takes.
TEST(FrozenGemm, Bf16MatchesReferenceFromRoundedOperands) {
  EngineGuard g;
  for (int e = 0; e < 2; ++e) {
    set_frozen_gemm_engine(e ? FrozenGemmEngine::OpenBLAS : FrozenGemmEngine::OneDNN);
    for (const auto& s : kShapes) {
      const int M = s[0], K = s[1], N = s[2];
      const auto x = random_vec(size_t(M) * K, 11), wf = random_vec(size_t(N) * K, 12), dy = random_vec(size_t(M) * N, 13);
      std::vector<uint16_t> w(wf.size());
      for (size_t i = 0; i < w.size(); ++i) w[i] = float_to_bf16(wf[i]);
      auto r = [](float v) { return double(round_to_bf16(v)); };
      std::vector<double> y_ref(size_t(M) * N, 0), dx_ref(size_t(M) * K, 0);
      for (int i = 0; i < M; ++i)
        for (int n = 0; n < N; ++n) {
          double acc = 0;
          for (int k = 0; k < K; ++k) acc += r(x[size_t(i) * K + k]) * bf16_to_float(w[size_t(n) * K + k]);
          y_ref[size_t(i) * N + n] = acc;
        }
      for (int i = 0; i < M; ++i)
        for (int n = 0; n < N; ++n) {
          const double g = r(dy[size_t(i) * N + n]);
          for (int k = 0; k < K; ++k) dx_ref[size_t(i) * K + k] += g * bf16_to_float(w[size_t(n) * K + k]);
        }
      std::vector<float> y(size_t(M) * N), dx(size_t(M) * K), dxa(size_t(M) * K, 1.0f);
      linear_forward<float>(y.data(), x.data(), w.data(), nullptr, M, K, N);
      linear_backward_input<float>(dx.data(), dy.data(), w.data(), M, K, N, false);
      linear_backward_input<float>(dxa.data(), dy.data(), w.data(), M, K, N, true);
      std::vector<double> dxa_ref = dx_ref;
      for (double& v : dxa_ref) v += 1.0;
      EXPECT_LT(rel_err(y, y_ref), 1e-5) << M << "x" << K << "x" << N;
      EXPECT_LT(rel_err(dx, dx_ref), 1e-5) << M << "x" << K << "x" << N;
      EXPECT_LT(rel_err(dxa, dxa_ref), 1e-5) << M << "x" << K << "x" << N;
    }
  }
  std::printf("bf16 frozen GEMM kernel: %s\n", frozen_gemm_kernel(DType::BF16).c_str());
}

// Staged once (the fused LM head's slices): the GEMMs on frozen_gemm_staged_rows with
// frozen_gemm_staged_input compute, bit for bit, what the same GEMMs on the bf16 weight itself
// compute, for a slice of rows in the middle, with bf16_compute on and off, whichever path
// (widened or this CPU's bf16 matmul) the weight takes.
TEST(FrozenGemm, StagedBf16RowsComputeWhatTheWeightComputes) {
  EngineGuard g;
  set_frozen_gemm_engine(FrozenGemmEngine::OneDNN);
  const int M = 70, K = 96, N = 300, n0 = 64, n1 = 200, C = n1 - n0;
  const auto x = random_vec(size_t(M) * K, 21), wf = random_vec(size_t(N) * K, 22), dy = random_vec(size_t(M) * C, 23);
  std::vector<uint16_t> w(wf.size());
  for (size_t i = 0; i < w.size(); ++i) w[i] = float_to_bf16(wf[i]);
  for (bool compute : {true, false}) {
    WeightView<float> whole(w.data());
    whole.bf16_compute = compute;
    const WeightView<float> slice = whole.offset(size_t(n0) * K);
    std::vector<float> y_ref(size_t(M) * C), dx_ref(size_t(M) * K), y(size_t(M) * C), dx(size_t(M) * K);
    linear_forward<float>(y_ref.data(), x.data(), slice, nullptr, M, K, C);
    linear_backward_input<float>(dx_ref.data(), dy.data(), slice, M, K, C, false);
    const float* xs = frozen_gemm_staged_input(x.data(), M, K, whole);
    const WeightView<float> staged = frozen_gemm_staged_rows(whole, n0, n1, K);
    EXPECT_TRUE(staged.dtype == DType::F32 || (staged.is_bf16() && compute)) << "bf16_compute " << compute;
    linear_forward<float>(y.data(), xs, staged, nullptr, M, K, C);
    EXPECT_EQ(y, y_ref) << "bf16_compute " << compute;
    if (compute) continue;  // a bf16_compute weight's dy would be rounded; the head's dX GEMM never is
    linear_backward_input<float>(dx.data(), dy.data(), staged, M, K, C, false);
    EXPECT_EQ(dx, dx_ref);
  }
}

ModelConfig small_model(const char* dtype) {
  ModelConfig m = test::model_shape(2, 4, 64, 300, 32);
  m.init_std = 0.1f;
  m.dtype = dtype;
  return m;
}

// Exact: the frozen matrices of a bf16 model take half the bytes of the fp32 ones; the
// LayerNorm parameters and biases (fp32 in both) are the same; the estimate agrees.
TEST(Bf16Model, FrozenMatricesTakeExactlyHalfTheBytes) {
  MpiCommunicator comm(MPI_COMM_SELF, 1, 1);
  LoraConfig l;
  GptModel<float> f(small_model("fp32"), l, comm, 2, 16), b(small_model("bf16"), l, comm, 2, 16);
  EXPECT_EQ(2 * b.frozen_matrix_bytes(), f.frozen_matrix_bytes());
  EXPECT_EQ(f.frozen_bytes() - f.frozen_matrix_bytes(), b.frozen_bytes() - b.frozen_matrix_bytes());
  // What is really allocated: the bf16 buffer is exactly half of the fp32 matrices.
  EXPECT_EQ(b.base_bf16().size() * sizeof(uint16_t) * 2, f.frozen_matrix_bytes());
  EXPECT_EQ(b.base().size() * sizeof(float) + b.base_bf16().size() * sizeof(uint16_t), b.frozen_bytes());
  EXPECT_EQ(estimate_model_memory(small_model("bf16"), l, 1, 2, 16).frozen_weights, b.frozen_bytes());
  EXPECT_EQ(estimate_model_memory(small_model("fp32"), l, 1, 2, 16).frozen_weights, f.frozen_bytes());
}

// b's frozen tensors are f's: the bf16 ones rounded to nearest even, the rest equal.
void expect_rounded_copy(GptModel<float>& f, GptModel<float>& b) {
  for (const TensorSpec& s : b.base_layout().tensors) {
    const TensorSpec& fs = f.base_layout().at(s.name);
    for (size_t i = 0; i < s.local_size(); ++i) {
      const float want = f.base()[fs.offset + i];
      if (s.dtype == DType::BF16) ASSERT_EQ(b.base_bf16()[s.offset + i], float_to_bf16(want)) << s.name;
      else ASSERT_EQ(b.base()[s.offset + i], want) << s.name;
    }
  }
}

TEST(Bf16Model, SeededWeightsAreTheRoundedFp32Ones) {
  MpiCommunicator comm(MPI_COMM_SELF, 1, 1);
  LoraConfig l;
  GptModel<float> f(small_model("fp32"), l, comm, 2, 16), b(small_model("bf16"), l, comm, 2, 16);
  f.init_base_from_seed(5);
  b.init_base_from_seed(5);
  expect_rounded_copy(f, b);
}

TEST(Bf16Model, ReadsABaseFileIntoBf16RoundingToNearestEven) {
  MpiCommunicator comm(MPI_COMM_SELF, 1, 1);
  LoraConfig l;
  GptModel<float> f(small_model("fp32"), l, comm, 2, 16), b(small_model("bf16"), l, comm, 2, 16);
  f.init_base_from_seed(9);
  const std::string path = std::string(LORA_BINARY_DIR) + "/bf16_read_test.h5";
  write_base_weights(path, f.base_layout(), f.base().data());
  read_base_weights(path, b.base_layout(), 0, b.base().data(), b.base_bf16().data());
  expect_rounded_copy(f, b);
  // A bf16 layout without a bf16 buffer is a programming error, said so.
  EXPECT_THROW(read_base_weights(path, b.base_layout(), 0, b.base().data()), std::logic_error);
  std::remove(path.c_str());
}

// Same seed, same tokens: the first step's loss of bf16 within 1e-2 relative of fp32, and
// every LoRA gradient close (B = 0, so dB carries the base model's signal).
TEST(Bf16Model, FirstStepLossAgreesWithFp32) {
  MpiCommunicator comm(MPI_COMM_SELF, 1, 1);
  LoraConfig l;
  for (bool& t : l.targets) t = true;
  const int B = 2, T = 16;
  std::vector<int32_t> in(B * T), tg(B * T);
  std::vector<float> mask(B * T, 1.0f);
  for (int i = 0; i < B * T; ++i) in[i] = (i * 37 + 11) % 300, tg[i] = (i * 53 + 7) % 300;
  MicroBatch mb{in.data(), tg.data(), mask.data(), B, T};
  double loss[2];
  std::vector<float> grads[2];
  for (int k = 0; k < 2; ++k) {
    GptModel<float> m(small_model(k ? "bf16" : "fp32"), l, comm, B, T);
    m.init_base_from_seed(3);
    m.init_lora(4);
    m.zero_grads();
    loss[k] = m.step(mb, B * T, DropoutContext{}, true);
    grads[k] = m.lora_grads();
  }
  std::printf("first-step loss: fp32 %.6f, bf16 %.6f\n", loss[0], loss[1]);
  EXPECT_LT(std::abs(loss[1] - loss[0]) / loss[0], 1e-2);
  EXPECT_LT(rel_err(grads[1], grads[0]), 5e-2);
}

}  // namespace
}  // namespace lora
