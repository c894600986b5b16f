// `lora_dist analyze` (trainer/analyze/subspace.h, trainer/analyze/analyze.h): the subspace similarity φ of
// constructed A matrices whose answer is known in closed form (the same span: 1; orthogonal
// spans: 0; one direction turned by θ: cos²θ), the amplification of a ΔW and W built from
// chosen singular vectors, checked against values computed here by hand and by an explicit
// SVD of the formed ΔW; the random projections' mean against its expectation; an adapter's
// own LoRA settings read back from adapter.h5; the command-line lists.
#include <gtest/gtest.h>

#include <Eigen/Dense>
#include <cmath>
#include <filesystem>

#include "comm/mpi_communicator.h"
#include "io/checkpoint.h"
#include "model/gpt.h"
#include "model/rng.h"
#include "tests/model_shape.h"
#include "trainer/train/adamw.h"
#include "trainer/analyze/analyze.h"
#include "trainer/config/config_loader.h"
#include "trainer/analyze/subspace.h"
#include "unique_temp_path.h"

namespace lora {
namespace {

using Eigen::MatrixXd;

// A k x k orthogonal matrix: the axes of a test, turned away from the coordinate axes so
// that nothing passes only because its vectors are unit vectors.
MatrixXd rotation(int k, uint64_t seed) { return random_orthonormal(k, k, seed, 7); }

// A [r, k] with right singular vectors the given orthonormal rows of `dirs` (r x k) and
// singular values `s` (decreasing), times an arbitrary left rotation.
MatrixXd a_with(const MatrixXd& dirs, const std::vector<double>& s, uint64_t seed) {
  const int r = int(dirs.rows());
  MatrixXd S = MatrixXd::Zero(r, r);
  for (int i = 0; i < r; ++i) S(i, i) = s[i];
  return rotation(r, seed) * S * dirs;
}

TEST(AnalyzeSubspace, SameSpanIsOneEverywhere) {
  const int k = 24;
  const MatrixXd Q = rotation(k, 1);
  const MatrixXd A1 = a_with(Q.topRows(4).eval(), {4, 3, 2, 1}, 2);
  // The same singular directions in the same order, other singular values and left factor.
  const MatrixXd A2 = a_with(Q.topRows(4).eval(), {8, 5, 0.5, 0.1}, 3);
  const MatrixXd phi = subspace_similarity(right_singular_vectors(A1), right_singular_vectors(A2), 4, 4);
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j) EXPECT_NEAR(phi(i, j), 1.0, 1e-12) << "i " << i + 1 << " j " << j + 1;
  // An adapter against itself: 1 for every i, j (the paper's diagonal blocks).
  const MatrixXd self = subspace_similarity(right_singular_vectors(A1), right_singular_vectors(A1), 4, 4);
  EXPECT_NEAR((self - MatrixXd::Ones(4, 4)).cwiseAbs().maxCoeff(), 0.0, 1e-12);
}

TEST(AnalyzeSubspace, OrthogonalSpansAreZero) {
  const int k = 20;
  const MatrixXd Q = rotation(k, 4);
  const MatrixXd A1 = a_with(Q.topRows(3).eval(), {3, 2, 1}, 5);
  const MatrixXd A2 = a_with(Q.middleRows(3, 5).eval(), {5, 4, 3, 2, 1}, 6);
  const MatrixXd phi = subspace_similarity(right_singular_vectors(A1), right_singular_vectors(A2), 3, 5);
  ASSERT_EQ(phi.rows(), 3);
  ASSERT_EQ(phi.cols(), 5);
  EXPECT_LT(phi.cwiseAbs().maxCoeff(), 1e-24);  // squared cosines of round-off size
}

// A1's top direction is q0 (then q2); A2's is q0 turned by θ towards q1 (then q3). The only
// non-zero cosine between the two bases is cos θ, between the two top directions, so
// φ(i, j) = cos²θ / min(i, j): cos²θ for i = 1 or j = 1, cos²θ / 2 for i = j = 2.
TEST(AnalyzeSubspace, TurnedDirectionGivesCosSquared) {
  const int k = 16;
  const MatrixXd Q = rotation(k, 8);
  for (double theta : {0.0, 0.3, 0.7853981633974483, 1.2, 1.5707963267948966}) {
    MatrixXd d1(2, k), d2(2, k);
    d1 << Q.row(0), Q.row(2);
    d2 << std::cos(theta) * Q.row(0) + std::sin(theta) * Q.row(1), Q.row(3);
    const MatrixXd phi = subspace_similarity(right_singular_vectors(a_with(d1, {3, 1}, 9)),
                                             right_singular_vectors(a_with(d2, {2, 1}, 10)), 2, 2);
    const double c2 = std::cos(theta) * std::cos(theta);
    EXPECT_NEAR(phi(0, 0), c2, 1e-12) << theta;
    EXPECT_NEAR(phi(0, 1), c2, 1e-12) << theta;
    EXPECT_NEAR(phi(1, 0), c2, 1e-12) << theta;
    EXPECT_NEAR(phi(1, 1), c2 / 2, 1e-12) << theta;
  }
}

TEST(AnalyzeSubspace, GridIsTheNormOfEachBlock) {
  // Against the definition, block by block, for unrelated random A's of ranks 3 and 5.
  const MatrixXd A1 = random_orthonormal(12, 3, 11, 0).transpose() * 2.0 + random_orthonormal(12, 3, 12, 0).transpose();
  const MatrixXd A2 = random_orthonormal(12, 5, 13, 0).transpose();
  const MatrixXd U1 = right_singular_vectors(A1), U2 = right_singular_vectors(A2);
  const MatrixXd phi = subspace_similarity(U1, U2, 3, 5);
  for (int i = 1; i <= 3; ++i)
    for (int j = 1; j <= 5; ++j) {
      const double want = (U1.leftCols(i).transpose() * U2.leftCols(j)).squaredNorm() / std::min(i, j);
      EXPECT_NEAR(phi(i - 1, j - 1), want, 1e-13);
      EXPECT_GE(phi(i - 1, j - 1), 0.0);
      EXPECT_LE(phi(i - 1, j - 1), 1.0 + 1e-12);
    }
  EXPECT_THROW(subspace_similarity(U1, U2, 4, 5), std::invalid_argument);  // i beyond r
}

TEST(AnalyzeSubspace, RightSingularVectorsByDecreasingValue) {
  const MatrixXd Q = rotation(10, 14);
  const MatrixXd A = a_with(Q.topRows(3).eval(), {5, 2, 1}, 15);
  const MatrixXd V = right_singular_vectors(A);
  ASSERT_EQ(V.rows(), 10);
  ASSERT_EQ(V.cols(), 3);
  for (int c = 0; c < 3; ++c) EXPECT_NEAR(std::abs(V.col(c).dot(Q.row(c).transpose())), 1.0, 1e-12) << c;
}

TEST(AnalyzeSubspace, LowRankSvdEqualsTheSvdOfTheProduct) {
  const MatrixXd B = random_orthonormal(30, 4, 16, 0) * 0.3 + random_orthonormal(30, 4, 17, 0);
  const MatrixXd A = random_orthonormal(20, 4, 18, 0).transpose();
  const SingularBasis f = low_rank_svd(B, A, 2.5);
  const Eigen::JacobiSVD<MatrixXd> full(2.5 * B * A, Eigen::ComputeThinU | Eigen::ComputeThinV);
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(f.s(i), full.singularValues()(i), 1e-12);
  EXPECT_LT((f.U * f.s.asDiagonal() * f.V.transpose() - 2.5 * B * A).norm(), 1e-12);
  EXPECT_LT((f.U.transpose() * f.U - MatrixXd::Identity(4, 4)).norm(), 1e-12);
  EXPECT_LT((f.V.transpose() * f.V - MatrixXd::Identity(4, 4)).norm(), 1e-12);
}

// W = P diag(w) Qᵀ with w = 10, 8, 6, 0.5, 0.25, 0.125, ...; ΔW = s B A with B = P[:, 3:5] diag(σ),
// A = Q[:, 3:5]ᵀ: ΔW lives exactly in W's 4th and 5th directions, where W is small. Then
// ‖Uᵀ W V‖ = √(w₄² + w₅²), with W's own top 2: √(w₁² + w₂²), ‖ΔW‖ = s √(σ₁² + σ₂²).
TEST(AnalyzeAmplification, AlignedWithWeakDirectionsOfW) {
  const int out = 12, in = 9, r = 2;
  const MatrixXd P = rotation(out, 19), Q = rotation(in, 20);
  std::vector<double> w = {10, 8, 6, 0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625};
  MatrixXd W = MatrixXd::Zero(out, in);
  for (int i = 0; i < in; ++i) W += w[i] * P.col(i) * Q.col(i).transpose();
  const double s = 0.75;
  MatrixXd B(out, r), A(r, in);
  B << 3.0 * P.col(3), 2.0 * P.col(4);
  A << Q.col(3).transpose(), Q.col(4).transpose();
  double w_squares = 0;
  for (double v : w) w_squares += v * v;
  const Amplification a = amplification(W, thin_svd(W), B, A, s, 4, 1, 0);
  EXPECT_EQ(a.r, 2);
  EXPECT_NEAR(a.w_norm, std::sqrt(w_squares), 1e-12);
  EXPECT_NEAR(a.delta_norm, s * std::sqrt(9.0 + 4.0), 1e-12);
  EXPECT_NEAR(a.delta_singular[0], s * 3.0, 1e-12);
  EXPECT_NEAR(a.delta_singular[1], s * 2.0, 1e-12);
  EXPECT_NEAR(a.proj_delta, std::sqrt(0.5 * 0.5 + 0.25 * 0.25), 1e-12);
  EXPECT_NEAR(a.proj_w, std::sqrt(100.0 + 64.0), 1e-12);
  EXPECT_NEAR(a.w_singular[0], 10.0, 1e-12);
  EXPECT_NEAR(a.factor, s * std::sqrt(13.0) / std::sqrt(0.3125), 1e-10);
  EXPECT_EQ(a.proj_random.size(), 4u);
  EXPECT_NEAR(a.proj_random_expected, r * a.w_norm / std::sqrt(double(out * in)), 1e-12);
}

// Unstructured W, B, A: the projection equals the one from an explicit SVD of the formed ΔW.
TEST(AnalyzeAmplification, EqualsTheExplicitSvdOfDeltaW) {
  const int out = 15, in = 11, r = 3;
  MatrixXd W(out, in), B(out, r), A(r, in);
  for (int i = 0; i < out; ++i)
    for (int j = 0; j < in; ++j) W(i, j) = normal_element(21, RngPurpose::RandomProjection, 0, uint64_t(i) * in + j, 1.0);
  for (int i = 0; i < out; ++i)
    for (int j = 0; j < r; ++j) B(i, j) = normal_element(22, RngPurpose::RandomProjection, 0, uint64_t(i) * r + j, 0.1);
  for (int i = 0; i < r; ++i)
    for (int j = 0; j < in; ++j) A(i, j) = normal_element(23, RngPurpose::RandomProjection, 0, uint64_t(i) * in + j, 0.5);
  const double s = 4.0;
  const Amplification a = amplification(W, thin_svd(W), B, A, s, 2, 3, 0);
  const Eigen::JacobiSVD<MatrixXd> dw(s * B * A, Eigen::ComputeThinU | Eigen::ComputeThinV);
  const MatrixXd U = dw.matrixU().leftCols(r), V = dw.matrixV().leftCols(r);
  const double want = (U.transpose() * W * V).norm();
  EXPECT_NEAR(a.proj_delta, want, 1e-12 * want);
  EXPECT_NEAR(a.delta_norm, (s * B * A).norm(), 1e-12);
  EXPECT_NEAR(a.factor, (s * B * A).norm() / want, 1e-10);
  const Eigen::JacobiSVD<MatrixXd> ws(W, Eigen::ComputeThinU | Eigen::ComputeThinV);
  EXPECT_NEAR(a.proj_w, ws.singularValues().head(r).norm(), 1e-12);
}

// E ‖Uᵀ W V‖² = r² ‖W‖² / (out in) for uniformly random subspaces: the root of 2000 draws'
// mean square is within 3 % of its root (the standard error is under 1 % here).
TEST(AnalyzeAmplification, RandomProjectionsMatchTheirExpectation) {
  const int out = 20, in = 16, r = 3;
  MatrixXd W(out, in);
  for (int i = 0; i < out; ++i)
    for (int j = 0; j < in; ++j) W(i, j) = (i == j ? 5.0 : 0.0) + 0.1 * (i + 2 * j);
  MatrixXd B = MatrixXd::Zero(out, r), A = MatrixXd::Zero(r, in);
  for (int i = 0; i < r; ++i) B(i, i) = 1, A(i, i + 1) = 1;
  const Amplification a = amplification(W, thin_svd(W), B, A, 1.0, 2000, 5, 0);
  double mean_square = 0;
  for (double p : a.proj_random) mean_square += p * p / a.proj_random.size();
  EXPECT_NEAR(std::sqrt(mean_square) / a.proj_random_expected, 1.0, 0.03);
  // Reproducible from the seed; another seed draws other subspaces.
  const Amplification again = amplification(W, thin_svd(W), B, A, 1.0, 3, 5, 0);
  const Amplification other = amplification(W, thin_svd(W), B, A, 1.0, 3, 6, 0);
  for (int t = 0; t < 3; ++t) {
    EXPECT_EQ(again.proj_random[t], a.proj_random[t]);
    EXPECT_NE(other.proj_random[t], a.proj_random[t]);
  }
  const MatrixXd U = random_orthonormal(out, r, 5, 0);
  EXPECT_LT((U.transpose() * U - MatrixXd::Identity(r, r)).norm(), 1e-12);
}

// adapter.h5 records its own r, alpha, rslora and targets; analyze takes each adapter as it was trained.
TEST(AnalyzeAdapter, LoraSettingsComeFromTheFile) {
  namespace fs = std::filesystem;
  const fs::path dir = test::unique_temp_path("analyze_lora_config");
  fs::create_directories(dir);
  RunConfig cfg;
  cfg.model = test::model_shape(2, 2, 16, 32, 8);
  cfg.lora.r = 3;
  cfg.lora.alpha = 5;
  cfg.lora.rslora = true;
  for (int t = 0; t < kNumTargets; ++t) cfg.lora.targets[t] = t == kK || t == kFc2;
  MpiCommunicator comm(MPI_COMM_SELF, 1, 1);
  GptModel<float> model(cfg.model, cfg.lora, comm, 1, 8);
  model.init_lora(1);
  AdamW unused(model.lora_params().size());
  const std::string path = (dir / "adapter.h5").string();
  save_adapter(comm, cfg.model, cfg.lora, base_fingerprint(cfg.model),
               LoraSlices{model.lora_layout(), 0, model.lora_params().data(), unused.m.data(), unused.v.data()}, path);
  const LoraConfig lc = read_adapter_lora_config(path);
  EXPECT_EQ(lc.r, 3);
  EXPECT_EQ(lc.alpha, 5.0f);
  EXPECT_TRUE(lc.rslora);
  EXPECT_EQ(lc.target_list(), "k,fc2");
  try {
    read_adapter_lora_config((dir / "missing.h5").string());
    FAIL() << "a missing file was read";
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("missing.h5"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}

TEST(AnalyzeCommandLine, Lists) {
  EXPECT_EQ(parse_layer_list("all", 3), (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(parse_layer_list("2,0", 3), (std::vector<int>{2, 0}));
  EXPECT_THROW(parse_layer_list("3", 3), ConfigError);
  EXPECT_THROW(parse_layer_list("-1", 3), ConfigError);
  EXPECT_THROW(parse_layer_list("1x", 3), ConfigError);
  EXPECT_THROW(parse_layer_list("", 3), ConfigError);
  using Pairs = std::vector<std::pair<int, int>>;
  EXPECT_EQ(parse_pair_list("first", 3), (Pairs{{0, 1}, {0, 2}}));
  EXPECT_EQ(parse_pair_list("all", 3), (Pairs{{0, 1}, {0, 2}, {1, 2}}));
  EXPECT_EQ(parse_pair_list("3-1,2-3", 3), (Pairs{{2, 0}, {1, 2}}));
  EXPECT_THROW(parse_pair_list("1-4", 3), ConfigError);
  EXPECT_THROW(parse_pair_list("2-2", 3), ConfigError);
  EXPECT_THROW(parse_pair_list("1:2", 3), ConfigError);
  EXPECT_EQ(parse_adapter_spec("out/a.h5").path, "out/a.h5");
  EXPECT_EQ(parse_adapter_spec("peft@v2/dir@run.yaml").path, "peft@v2/dir");
  EXPECT_EQ(parse_adapter_spec("peft@v2/dir@run.yaml").yaml, "run.yaml");
  EXPECT_EQ(parse_adapter_spec("me@host/a.h5").yaml, "");
  EXPECT_EQ(parse_adapter_spec("me@host/a.h5").path, "me@host/a.h5");
}

}  // namespace
}  // namespace lora
