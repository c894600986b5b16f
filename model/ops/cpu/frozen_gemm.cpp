#include "model/ops/cpu/frozen_gemm.h"

#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>
#include <tuple>
#include <type_traits>
#include <vector>

#include "model/nf4_weight.h"
#include "model/ops/cpu/gemm.h"
#include "model/ops/gemm_clock.h"
#include "model/ops/linear.h"

extern "C" char* openblas_get_corename(void);

namespace lora {

namespace {

using dnnl::memory;

struct Dnnl {
  dnnl::engine eng{dnnl::engine::kind::cpu, 0};
  dnnl::stream strm{eng};
};
Dnnl& dnnl_ctx() {
  static Dnnl d;
  return d;
}

// One cached matmul per (M, N, K, weights transposed, weight dtype, accumulate, ldb).
// src [M x K] row-major (lda = K), dst [M x N] with row stride ldc, weights [K x N] logical:
// forward (trans) reads W [N x K] as W^T: element (k, n) at n*ldw + k; backward reads W as is.
using Key = std::tuple<int, int, int, bool, bool, bool, int, int, int>;
struct Prim {
  dnnl::matmul prim;
  memory::desc src, wei, dst;
  std::string impl;
};

std::mutex cache_mutex;
std::string g_bf16_refusal = "no oneDNN bf16 matmul on this CPU";  // why the bf16 path widens
std::map<Key, std::shared_ptr<Prim>>& cache() {
  static std::map<Key, std::shared_ptr<Prim>> c;
  return c;
}

// Null when oneDNN has no implementation (or only the reference loop) for bf16.
std::shared_ptr<Prim> get_prim(int M, int N, int K, bool trans, bool bf16, bool accumulate, int lda, int ldw,
                               int ldc) {
  const Key key{M, N, K, trans, bf16, accumulate, lda, ldw, ldc};
  std::lock_guard<std::mutex> lock(cache_mutex);
  auto it = cache().find(key);
  if (it != cache().end()) return it->second;
  const auto dt = bf16 ? memory::data_type::bf16 : memory::data_type::f32;
  auto p = std::make_shared<Prim>();
  p->src = memory::desc({M, K}, dt, {lda, 1});
  p->wei = trans ? memory::desc({K, N}, dt, {1, ldw}) : memory::desc({K, N}, dt, {ldw, 1});
  p->dst = memory::desc({M, N}, memory::data_type::f32, {ldc, 1});
  dnnl::primitive_attr attr;
  if (accumulate) {
    dnnl::post_ops po;
    po.append_sum(1.0f);
    attr.set_post_ops(po);
  }
  try {
    dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(p->src, p->wei, p->dst), attr, dnnl_ctx().eng);
    p->impl = pd.impl_info_str();
    if (bf16 && p->impl.rfind("ref", 0) == 0) {  // the reference loop: far slower than widening
      g_bf16_refusal = "oneDNN offers only its reference bf16 matmul (" + p->impl + ") on this CPU";
      p.reset();
    } else {
      p->prim = dnnl::matmul(pd);
    }
  } catch (const dnnl::error& e) {
    if (bf16) g_bf16_refusal = std::string("oneDNN has no bf16 matmul for this CPU (") + e.what() + ")";
    p.reset();
  }
  cache()[key] = p;
  return p;
}

void run_prim(const Prim& p, const void* src, const void* wei, float* dst) {
  GemmTimed timed;
  Dnnl& d = dnnl_ctx();
  memory s(p.src, d.eng, const_cast<void*>(src)), w(p.wei, d.eng, const_cast<void*>(wei)), o(p.dst, d.eng, dst);
  p.prim.execute(d.strm, {{DNNL_ARG_SRC, s}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_DST, o}});
  d.strm.wait();
}

FrozenGemmEngine initial_engine() {
  const char* e = std::getenv("LORA_FROZEN_GEMM");
  if (e && std::strcmp(e, "openblas") == 0) return FrozenGemmEngine::OpenBLAS;
  if (e && std::strcmp(e, "onednn") == 0) return FrozenGemmEngine::OneDNN;
  return FrozenGemmEngine::OneDNN;
}
FrozenGemmEngine g_engine = initial_engine();

// C[M x N] (row stride ldc) = A[M x K] op(B) (+ C): the fp32 GEMM with the chosen engine.
// trans: B is [N x K] (ldb) used as B^T; else B is [K x N] (ldb).
void dense(float* C, int ldc, const float* A, int lda, const float* B, int ldb, int M, int N, int K, bool trans,
           bool acc) {
  if (g_engine == FrozenGemmEngine::OneDNN) {
    if (auto p = get_prim(M, N, K, trans, false, acc, lda, ldb, ldc)) return run_prim(*p, A, B, C);
  }
  gemm(false, trans, M, N, K, 1.0f, A, lda, B, ldb, acc ? 1.0f : 0.0f, C, ldc);
}
void dense(double* C, int ldc, const double* A, int lda, const double* B, int ldb, int M, int N, int K, bool trans,
           bool acc) {
  gemm(false, trans, M, N, K, 1.0, A, lda, B, ldb, acc ? 1.0 : 0.0, C, ldc);
}

template <typename T>
std::vector<T>& scratch(int which) {
  thread_local std::vector<T> s[2];
  return s[which];
}

// src[rows x cols] (row stride ld) rounded to bf16 (GEMM inputs of a bf16 weight are bf16,
// DESIGN §7), as T, packed [rows x cols].
template <typename T>
const T* rounded_input(const T* src, int rows, int cols, int ld) {
  std::vector<T>& r = scratch<T>(0);
  const size_t n = static_cast<size_t>(rows) * cols;
  if (r.size() < n) r.resize(n);
#pragma omp parallel for schedule(static)
  for (int i = 0; i < rows; ++i)
    for (int j = 0; j < cols; ++j)
      r[static_cast<size_t>(i) * cols + j] = static_cast<T>(round_to_bf16(static_cast<float>(src[static_cast<size_t>(i) * ld + j])));
  return r.data();
}

template <typename T>
const T* widen(const uint16_t* w, size_t n) {
  std::vector<T>& b = scratch<T>(1);
  if (b.size() < n) b.resize(n);
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; ++i) b[i] = static_cast<T>(bf16_to_float(w[i]));
  return b.data();
}

// Rows [n0, n1) of W in T: bf16 widened, or NF4 dequantized (in the scratch buffer).
template <typename T>
const T* rows_of(WeightView<T> w, int n0, int n1, int K) {
  if (w.is_bf16()) return widen<T>(w.bf16() + static_cast<size_t>(n0) * K, static_cast<size_t>(n1 - n0) * K);
  std::vector<T>& b = scratch<T>(1);
  const size_t n = static_cast<size_t>(n1 - n0) * K;
  if (b.size() < n) b.resize(n);
  nf4_dequantize_rows(w.nf4_bytes(), *w.nf4, n0, n1, b.data());
  return b.data();
}

// bf16 x bf16 -> fp32 through oneDNN, when this CPU has it; false otherwise.
bool onednn_bf16(float* C, const float* A, const uint16_t* W, int M, int N, int K, bool trans, bool acc) {
  // forward: W [N x K] read as W^T (ldw K); backward: W is the [K x N] operand itself (ldw N).
  auto p = get_prim(M, N, K, trans, true, acc, K, trans ? K : N, N);
  if (!p) return false;
  std::vector<uint16_t>& a = *[] { thread_local std::vector<uint16_t> v; return &v; }();
  const size_t n = static_cast<size_t>(M) * K;
  if (a.size() < n) a.resize(n);
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; ++i) a[i] = float_to_bf16(A[i]);
  run_prim(*p, a.data(), W, C);
  return true;
}
bool onednn_bf16(double*, const double*, const uint16_t*, int, int, int, bool, bool) { return false; }

}  // namespace

FrozenGemmEngine frozen_gemm_engine() { return g_engine; }
void set_frozen_gemm_engine(FrozenGemmEngine e) { g_engine = e; }

bool onednn_bf16_matmul_available() {
  static const bool ok = get_prim(256, 768, 768, true, true, false, 768, 768, 768) != nullptr;
  return ok;
}

std::string frozen_gemm_kernel(DType dtype) {
  auto fp32 = [] {
    if (g_engine == FrozenGemmEngine::OpenBLAS) return std::string("OpenBLAS sgemm (") + openblas_get_corename() + ")";
    auto p = get_prim(256, 768, 768, true, false, false, 768, 768, 768);
    return p ? "oneDNN matmul " + p->impl : std::string("OpenBLAS sgemm (oneDNN refused fp32)");
  };
  if (dtype == DType::F32) return fp32() + ", fp32";
  if (dtype == DType::NF4)
    return std::string("NF4 weights dequantized to fp32 per block of rows (") + nf4_dequantize_kernel() + ") + " + fp32();
  if (onednn_bf16_matmul_available())
    return "oneDNN matmul " + get_prim(256, 768, 768, true, true, false, 768, 768, 768)->impl + ", bf16 x bf16 -> fp32";
  return "bf16 weights widened to fp32 per block + " + fp32() + " (" + g_bf16_refusal + ")";
}

// fp32 W: one GEMM. bf16 W: bf16-rounded inputs, oneDNN's bf16 matmul or W widened a block of
// rows at a time; with bf16_compute off (model.dtype nf4's embeddings), widened and unrounded
// inputs, fp32 compute. NF4 W: W dequantized a block of rows at a time into fp32 and the fp32 GEMM
// on unrounded inputs, so an NF4 model computes what an fp32 model holding the dequantized
// weights computes (the inputs are not rounded to bf16 as QLoRA's bf16 compute would: that is
// a choice of compute type, not of storage, and fp32 keeps the runs comparable to 1e-6).
template <typename T>
void frozen_gemm_forward(T* y, const T* x, WeightView<T> w, int M, int K, int N) {
  if (w.dtype == DType::F32) return dense(y, N, x, K, w.native(), K, M, N, K, /*trans=*/true, false);
  const bool bf16_compute = w.is_bf16() && w.bf16_compute;
  if (bf16_compute && onednn_bf16(y, x, w.bf16(), M, N, K, true, false)) return;
  const T* xr = bf16_compute ? rounded_input(x, M, K, K) : x;
  const int nb = frozen_gemm_block_rows(K);
  for (int n0 = 0; n0 < N; n0 += nb) {  // y[:, n0:n1] = xr W[n0:n1]^T
    const int n1 = std::min(N, n0 + nb);
    dense(y + n0, N, xr, K, rows_of(w, n0, n1, K), K, M, n1 - n0, K, true, false);
  }
}

template <typename T>
void frozen_gemm_backward_input(T* dx, const T* dy, WeightView<T> w, int M, int K, int N, bool accumulate) {
  if (w.dtype == DType::F32) return dense(dx, K, dy, N, w.native(), K, M, K, N, /*trans=*/false, accumulate);
  const bool bf16_compute = w.is_bf16() && w.bf16_compute;
  if (bf16_compute && onednn_bf16(dx, dy, w.bf16(), M, K, N, false, accumulate)) return;
  const int nb = frozen_gemm_block_rows(K);
  for (int n0 = 0; n0 < N; n0 += nb) {  // dx (+)= dy[:, n0:n1] W[n0:n1, :], a block of the sum
    const int n1 = std::min(N, n0 + nb);
    const T* wb = rows_of(w, n0, n1, K);
    if (bf16_compute) {
      dense(dx, K, rounded_input(dy + n0, M, n1 - n0, N), n1 - n0, wb, K, M, K, n1 - n0, false, accumulate || n0 > 0);
    } else {
      dense(dx, K, dy + n0, N, wb, K, M, K, n1 - n0, false, accumulate || n0 > 0);
    }
  }
}

namespace {
// Whether a GEMM on w widens it to T: NF4, or bf16 computed in T (no bf16 matmul here, or
// bf16_compute off).
template <typename T>
bool widens(WeightView<T> w) {
  if (w.is_nf4()) return true;
  return w.is_bf16() && !(w.bf16_compute && std::is_same_v<T, float> && onednn_bf16_matmul_available());
}
}  // namespace

template <typename T>
WeightView<T> frozen_gemm_staged_rows(WeightView<T> w, int n0, int n1, int K) {
  if (!widens(w)) return w.offset(static_cast<size_t>(n0) * K);
  WeightView<T> f(rows_of(w, n0, n1, K));  // an fp32 (T) view: its GEMMs neither widen nor round
  return f;
}

template <typename T>
const T* frozen_gemm_staged_input(const T* x, int M, int K, WeightView<T> w) {
  return w.is_bf16() && w.bf16_compute && widens(w) ? rounded_input(x, M, K, K) : x;
}

template void frozen_gemm_forward<float>(float*, const float*, WeightView<float>, int, int, int);
template void frozen_gemm_forward<double>(double*, const double*, WeightView<double>, int, int, int);
template void frozen_gemm_backward_input<float>(float*, const float*, WeightView<float>, int, int, int, bool);
template void frozen_gemm_backward_input<double>(double*, const double*, WeightView<double>, int, int, int, bool);
template WeightView<float> frozen_gemm_staged_rows<float>(WeightView<float>, int, int, int);
template WeightView<double> frozen_gemm_staged_rows<double>(WeightView<double>, int, int, int);
template const float* frozen_gemm_staged_input<float>(const float*, int, int, WeightView<float>);
template const double* frozen_gemm_staged_input<double>(const double*, int, int, WeightView<double>);

}  // namespace lora
