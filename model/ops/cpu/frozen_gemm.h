// GEMMs on frozen weights (DESIGN §7): W is [N x K] (out x in) in the model's type or in bf16,
// activations are T, accumulation and results T (fp32 for the float model).
//
// float model: through oneDNN's matmul primitive, which picks AVX2 / AVX-512 / AVX512-BF16 /
// AMX kernels at run time. Primitives are created once per shape and cached.
//   fp32 W: oneDNN fp32 matmul, or OpenBLAS sgemm where that measured faster
//           (frozen_gemm_engine(); LORA_FROZEN_GEMM=onednn|openblas overrides).
//   bf16 W: the GEMM input (x or dy) is rounded to bf16 and, where this CPU has a oneDNN bf16
//           matmul that is not the reference C loop, oneDNN runs bf16 x bf16 -> fp32. Where it
//           has none (AVX2-only CPUs: oneDNN 2.6 implements bf16 matmul from avx512_core up),
//           W is widened to fp32 one block of rows at a time (a few MiB, in cache) and each
//           block runs the fp32 GEMM: the same products (bf16-rounded inputs, fp32 sums),
//           the memory stays halved.
// double model (gradient checks): OpenBLAS dgemm, bf16 W widened per block.
#pragma once
#include <string>

#include "model/dtype.h"

namespace lora {

// y[M x N] = x[M x K] W^T.
template <typename T>
void frozen_gemm_forward(T* y, const T* x, WeightView<T> w, int M, int K, int N);

// dx[M x K] = dy[M x N] W, or += when accumulate.
template <typename T>
void frozen_gemm_backward_input(T* dx, const T* dy, WeightView<T> w, int M, int K, int N, bool accumulate);

// Staging shared by several GEMMs (the fused LM head runs two on each vocabulary slice of the
// head for every tile of rows, model/gpt.cpp): a bf16 weight that these GEMMs would widen (no
// bf16 matmul on this CPU, or bf16_compute off) is widened once instead of per GEMM.
//   frozen_gemm_staged_rows: rows [n0, n1) of W as an fp32 view of the widened rows where the
//     GEMMs would widen them, else W's own view of those rows. The widened rows live in the
//     buffer every widening GEMM uses: valid until the next frozen GEMM on a bf16 or NF4 view.
//   frozen_gemm_staged_input: x [M x K] as the GEMMs on frozen_gemm_staged_rows(w, ...) must
//     read it: rounded to bf16 (in the buffer the GEMMs round into) when the rows are widened
//     from a bf16_compute weight, so that they compute what the GEMM on w itself computes;
//     else x. Same lifetime.
template <typename T>
WeightView<T> frozen_gemm_staged_rows(WeightView<T> w, int n0, int n1, int K);
template <typename T>
const T* frozen_gemm_staged_input(const T* x, int M, int K, WeightView<T> w);

enum class FrozenGemmEngine { OneDNN, OpenBLAS };
// The engine of fp32 frozen-weight GEMMs; set_* changes it (tests and benchmarks).
FrozenGemmEngine frozen_gemm_engine();
void set_frozen_gemm_engine(FrozenGemmEngine e);
// Whether this CPU has a non-reference oneDNN bf16 matmul (queried once).
bool onednn_bf16_matmul_available();
// The kernel frozen-weight GEMMs of `dtype` use on this CPU, in words, e.g.
// "oneDNN matmul gemm:jit (fp32)"; queried from oneDNN's impl_info_str() on a probe shape.
std::string frozen_gemm_kernel(DType dtype);

}  // namespace lora
