// The geometry of trained LoRA factors, as §7 of Hu et al. 2021 (LoRA) measures it, for
// `lora_dist analyze` (trainer/analyze/analyze.h). Pure linear algebra on double matrices; the SVDs
// and QRs are Eigen's (JacobiSVD for the small ones, BDCSVD for a base weight), none written
// here.
//
//   subspace similarity  φ(A1, A2, i, j) = ‖U1ⁱᵀ U2ʲ‖²_F / min(i, j)  ∈ [0, 1]
//       Uⁱ: the top-i right singular vectors of a LoRA A [r, in] (the input directions A
//       reads), as the columns of an [in, i] matrix. 1: one span holds the other; 0: orthogonal.
//   amplification        ‖ΔW‖_F / ‖Uᵀ W Vᵀ‖_F  for ΔW = s B A
//       U [out, r], V [r, in]: ΔW's top-r left / right singular vectors (the paper's Table 7
//       notation; here V is kept as the [in, r] matrix of columns, so the product is Uᵀ W V).
//       How strongly the update amplifies directions W itself barely uses.
#pragma once
#include <Eigen/Dense>
#include <cstdint>
#include <vector>

namespace lora {

// A thin SVD M = U diag(s) Vᵀ, singular values decreasing.
struct SingularBasis {
  Eigen::MatrixXd U;  // [rows, n] left singular vectors as columns
  Eigen::VectorXd s;  // n singular values, decreasing
  Eigen::MatrixXd V;  // [cols, n] right singular vectors as columns
};

// Of any matrix (a base weight: BDCSVD, divide and conquer, for d in the thousands).
SingularBasis thin_svd(const Eigen::MatrixXd& M);

// Of the rank-r product s B A (B [out, r], A [r, in], r <= out, in) without forming it:
// B = Q_B R_B and Aᵀ = Q_A R_A (Householder QR), then the SVD of the r x r core
// s R_B R_Aᵀ = Uc Σ Vcᵀ gives s B A = (Q_B Uc) Σ (Q_A Vc)ᵀ. Exact up to round-off, costs
// O((out + in) r²) instead of an SVD of an out x in matrix, and keeps the singular vectors
// of a tiny update as accurate as those of a large one.
SingularBasis low_rank_svd(const Eigen::MatrixXd& B, const Eigen::MatrixXd& A, double scale);

// The paper's U_A: the right singular vectors of a LoRA A [r, in] as the columns of an
// [in, r] matrix, by decreasing singular value.
Eigen::MatrixXd right_singular_vectors(const Eigen::MatrixXd& A);

// The φ grid for 1 <= i <= max_i (rows) and 1 <= j <= max_j (columns): entry (i-1, j-1) is
// ‖U1[:, :i]ᵀ U2[:, :j]‖²_F / min(i, j). U1, U2 have orthonormal columns in the same space,
// at least max_i and max_j of them.
Eigen::MatrixXd subspace_similarity(const Eigen::MatrixXd& U1, const Eigen::MatrixXd& U2, int max_i, int max_j);

// ‖Uᵀ W V‖_F: the part of W [out, in] that maps span(V) into span(U) (orthonormal columns).
double projected_norm(const Eigen::MatrixXd& W, const Eigen::MatrixXd& U, const Eigen::MatrixXd& V);

// An [n, r] matrix with orthonormal columns whose span is uniformly distributed over the
// r-dimensional subspaces of Rⁿ (Householder Q of an n x r standard normal matrix), drawn
// from the counter-based Philox stream (seed, RandomProjection, stream): reproducible.
Eigen::MatrixXd random_orthonormal(int n, int r, uint64_t seed, uint32_t stream);

// The paper's Table 7 for one ΔW = s B A on its base weight W.
struct Amplification {
  int r = 0;                              // columns of B, rows of A
  double w_norm = 0;                      // ‖W‖_F
  double delta_norm = 0;                  // ‖ΔW‖_F
  std::vector<double> delta_singular;     // ΔW's r singular values
  std::vector<double> w_singular;         // W's top-r singular values
  double proj_delta = 0;                  // ‖Uᵀ W V‖_F, U, V: ΔW's top-r singular vectors
  double proj_w = 0;                      // the same with W's own top-r: (σ₁² + ... + σᵣ²)^½ of W
  std::vector<double> proj_random;        // the same with random orthonormal U, V, one per draw
  double proj_random_mean = 0;            // their mean
  double proj_random_expected = 0;        // r ‖W‖_F / √(out in) = (E ‖Uᵀ W V‖²_F)^½ for uniform U, V
  double factor = 0;                      // ‖ΔW‖_F / proj_delta (+inf when proj_delta is 0)
};

// W [out, in] with its thin SVD (computed once per base weight and shared by every adapter
// analysed on it), B [out, r], A [r, in], s the adapter's scale. The random U, V of draw t
// are streams 2 (stream_base + t) and 2 (stream_base + t) + 1 of `seed`: the same for every
// adapter of the same r on this weight, so their random rows compare like with like.
Amplification amplification(const Eigen::MatrixXd& W, const SingularBasis& w_svd, const Eigen::MatrixXd& B,
                            const Eigen::MatrixXd& A, double scale, int random_draws, uint64_t seed,
                            uint32_t stream_base);

}  // namespace lora
