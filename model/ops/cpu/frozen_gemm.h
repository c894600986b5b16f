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
