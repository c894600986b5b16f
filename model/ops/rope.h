// Rotary position embedding (Su et al. 2021) in Hugging Face's rotate-half convention, as the
// Llama family's q and k get it: with half = head_dim / 2 and, per position p and pair j < half,
// angle = p * inv_freq[j],
//   out[j]        = x[j] * cos(angle) - x[j + half] * sin(angle)
//   out[j + half] = x[j + half] * cos(angle) + x[j] * sin(angle)
// (q * cos + rotate_half(q) * sin, rotate_half(x) = cat(-x2, x1)). Hugging Face checkpoints
// are already permuted for this convention: nothing is permuted here. The model applies it
// in place to the q and k heads of the fused qkv output, which lie side by side at the start
// of each row ([q heads | k heads | v]).
#pragma once
#include <vector>

namespace lora {

// Llama 3.1's frequency scaling (`rope_scaling` / `rope_parameters` with rope_type "llama3").
// factor 0 means none (plain RoPE).
struct RopeScaling {
  double factor = 0;
  double low_freq_factor = 1;
  double high_freq_factor = 4;
  double original_max_position_embeddings = 8192;
};

// inv_freq[j] = theta^(-2j / head_dim), j < head_dim / 2, then, with llama3 scaling and
// wavelen = 2 pi / inv_freq, L = original_max_position_embeddings:
//   wavelen < L / high_freq_factor: unchanged;  wavelen > L / low_freq_factor: inv_freq / factor;
//   between: (1 - s) * inv_freq / factor + s * inv_freq, s = (L / wavelen - low) / (high - low).
// In double (Hugging Face computes it in float32: ~1e-7 apart).
std::vector<double> rope_inv_freq(int head_dim, double theta, const RopeScaling& scaling);

// cos and sin [n_pos, half] of positions pos0 .. pos0 + n_pos - 1.
template <typename T>
void rope_tables(T* cos, T* sin, const std::vector<double>& inv_freq, int pos0, int n_pos);

// The first n_heads * head_dim columns of x's rows (row stride ld), row r at table position
// r % T (rows = B * T, each sequence starting at the tables' first row), rotated in place.
template <typename T>
void rope_forward(T* x, const T* cos, const T* sin, int rows, int T_, int n_heads, int head_dim, int ld);

// The transpose (the inverse rotation), in place on dx: the gradient with respect to the
// input of rope_forward given the gradient dx with respect to its output.
template <typename T>
void rope_backward(T* dx, const T* cos, const T* sin, int rows, int T_, int n_heads, int head_dim, int ld);

// The CUDA twins (model/ops/cuda/rope.cu), float only; the tables are device memory.
namespace cuda {
template <typename T>
void rope_forward(T* x, const T* cos, const T* sin, int rows, int T_, int n_heads, int head_dim, int ld);
template <typename T>
void rope_backward(T* dx, const T* cos, const T* sin, int rows, int T_, int n_heads, int head_dim, int ld);
}  // namespace cuda

}  // namespace lora
