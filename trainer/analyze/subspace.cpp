#include "trainer/analyze/subspace.h"

#include <Eigen/SVD>
#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

#include "model/rng.h"

namespace lora {

namespace {

std::vector<double> first(const Eigen::VectorXd& v, int n) { return std::vector<double>(v.data(), v.data() + n); }

// Q of a thin Householder QR: [rows, cols] with orthonormal columns spanning M's.
Eigen::MatrixXd thin_q(const Eigen::MatrixXd& M) {
  const Eigen::HouseholderQR<Eigen::MatrixXd> qr(M);
  return qr.householderQ() * Eigen::MatrixXd::Identity(M.rows(), M.cols());
}

}  // namespace

SingularBasis thin_svd(const Eigen::MatrixXd& M) {
  const Eigen::BDCSVD<Eigen::MatrixXd> svd(M, Eigen::ComputeThinU | Eigen::ComputeThinV);
  return {svd.matrixU(), svd.singularValues(), svd.matrixV()};
}

SingularBasis low_rank_svd(const Eigen::MatrixXd& B, const Eigen::MatrixXd& A, double scale) {
  const Eigen::Index r = A.rows();
  if (B.cols() != r || r > B.rows() || r > A.cols())
    throw std::invalid_argument("low_rank_svd: B [" + std::to_string(B.rows()) + ", " + std::to_string(B.cols()) +
                                "] and A [" + std::to_string(A.rows()) + ", " + std::to_string(A.cols()) +
                                "] are not the factors of a rank-r product with r <= out, in");
  const Eigen::HouseholderQR<Eigen::MatrixXd> qr_b(B), qr_a(A.transpose());
  const Eigen::MatrixXd q_b = qr_b.householderQ() * Eigen::MatrixXd::Identity(B.rows(), r);
  const Eigen::MatrixXd q_a = qr_a.householderQ() * Eigen::MatrixXd::Identity(A.cols(), r);
  const Eigen::MatrixXd r_b = qr_b.matrixQR().topRows(r).triangularView<Eigen::Upper>();
  const Eigen::MatrixXd r_a = qr_a.matrixQR().topRows(r).triangularView<Eigen::Upper>();
  const Eigen::MatrixXd core = scale * r_b * r_a.transpose();
  // Jacobi on the small core: the most accurate SVD Eigen has, and r x r costs nothing.
  const Eigen::JacobiSVD<Eigen::MatrixXd> svd(core, Eigen::ComputeFullU | Eigen::ComputeFullV);
  return {q_b * svd.matrixU(), svd.singularValues(), q_a * svd.matrixV()};
}

Eigen::MatrixXd right_singular_vectors(const Eigen::MatrixXd& A) {
  // Jacobi (QR-preconditioned): A has few rows, and φ depends on the vectors' accuracy.
  const Eigen::JacobiSVD<Eigen::MatrixXd> svd(A, Eigen::ComputeThinV);
  return svd.matrixV();
}

Eigen::MatrixXd subspace_similarity(const Eigen::MatrixXd& U1, const Eigen::MatrixXd& U2, int max_i, int max_j) {
  if (U1.rows() != U2.rows() || max_i < 1 || max_j < 1 || max_i > U1.cols() || max_j > U2.cols())
    throw std::invalid_argument("subspace_similarity: bases [" + std::to_string(U1.rows()) + ", " +
                                std::to_string(U1.cols()) + "] and [" + std::to_string(U2.rows()) + ", " +
                                std::to_string(U2.cols()) + "] do not allow i <= " + std::to_string(max_i) +
                                ", j <= " + std::to_string(max_j));
  // ‖U1ⁱᵀ U2ʲ‖²_F is the sum of the squared cosines in the top-left i x j block of
  // C = U1ᵀ U2: one product, then 2-D prefix sums give every (i, j) at once.
  const Eigen::MatrixXd cos2 = (U1.leftCols(max_i).transpose() * U2.leftCols(max_j)).array().square().matrix();
  Eigen::MatrixXd prefix(max_i, max_j);
  for (int i = 0; i < max_i; ++i)
    for (int j = 0; j < max_j; ++j)
      prefix(i, j) = cos2(i, j) + (i ? prefix(i - 1, j) : 0.0) + (j ? prefix(i, j - 1) : 0.0) -
                     (i && j ? prefix(i - 1, j - 1) : 0.0);
  Eigen::MatrixXd phi(max_i, max_j);
  for (int i = 0; i < max_i; ++i)
    for (int j = 0; j < max_j; ++j) phi(i, j) = prefix(i, j) / std::min(i + 1, j + 1);
  return phi;
}

double projected_norm(const Eigen::MatrixXd& W, const Eigen::MatrixXd& U, const Eigen::MatrixXd& V) {
  return (U.transpose() * W * V).norm();  // Eigen's norm() of a matrix is Frobenius
}

Eigen::MatrixXd random_orthonormal(int n, int r, uint64_t seed, uint32_t stream) {
  Eigen::MatrixXd g(n, r);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < r; ++j)
      g(i, j) = normal_element(seed, RngPurpose::RandomProjection, stream, uint64_t(i) * r + j, 1.0);
  // The span of a Gaussian matrix is uniform over subspaces (its law is invariant under any
  // rotation), and Q spans the same columns.
  return thin_q(g);
}

Amplification amplification(const Eigen::MatrixXd& W, const SingularBasis& w_svd, const Eigen::MatrixXd& B,
                            const Eigen::MatrixXd& A, double scale, int random_draws, uint64_t seed,
                            uint32_t stream_base) {
  const int r = int(A.rows()), out = int(W.rows()), in = int(W.cols());
  if (B.rows() != out || A.cols() != in || r > w_svd.s.size())
    throw std::invalid_argument("amplification: W [" + std::to_string(out) + ", " + std::to_string(in) +
                                "] does not fit B [" + std::to_string(B.rows()) + ", " + std::to_string(B.cols()) +
                                "] A [" + std::to_string(A.rows()) + ", " + std::to_string(A.cols()) + "]");
  Amplification a;
  a.r = r;
  a.w_norm = W.norm();
  const SingularBasis delta = low_rank_svd(B, A, scale);
  a.delta_norm = delta.s.norm();  // ‖ΔW‖_F² is the sum of its squared singular values
  a.delta_singular = first(delta.s, r);
  a.w_singular = first(w_svd.s, r);
  a.proj_delta = projected_norm(W, delta.U, delta.V);
  a.proj_w = projected_norm(W, w_svd.U.leftCols(r), w_svd.V.leftCols(r));
  for (int t = 0; t < random_draws; ++t) {
    const uint32_t stream = 2 * (stream_base + uint32_t(t));
    a.proj_random.push_back(
        projected_norm(W, random_orthonormal(out, r, seed, stream), random_orthonormal(in, r, seed, stream + 1)));
    a.proj_random_mean += a.proj_random.back() / random_draws;
  }
  // E[P_U] = (r/out) I and E[P_V] = (r/in) I for uniform subspaces, drawn independently, so
  // E ‖Uᵀ W V‖²_F = E tr(P_U W P_V Wᵀ) = r² ‖W‖²_F / (out in).
  a.proj_random_expected = r * a.w_norm / std::sqrt(double(out) * in);
  a.factor = a.proj_delta > 0 ? a.delta_norm / a.proj_delta : std::numeric_limits<double>::infinity();
  return a;
}

}  // namespace lora
