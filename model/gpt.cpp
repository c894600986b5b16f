#include "model/gpt.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "comm/tp_regions.h"
#include "model/ops/attention.h"
#include "model/ops/cpu/frozen_gemm.h"
#include "model/ops/cpu/fused_lm_head.h"
#include "model/ops/cross_entropy.h"
#include "model/ops/embedding.h"
#include "model/ops/gelu.h"
#include "model/ops/layernorm.h"
#include "model/ops/residual.h"
#include "model/ops/rope.h"
#include "model/rng.h"

namespace lora {

namespace {
// Rows of the LM head processed at once: the logits of a chunk are the only vocabulary-wide
// buffer, so memory stays O(chunk x V/tp) instead of O(tokens x V). Each chunk's two GEMMs
// stream the whole [V/tp x d] embedding once more, so chunks are large: at GPT-2 124M,
// 1024 rows ran the LM head ~13% faster than 256 for 147 MiB more (64 rows: 1.6x slower).
constexpr int kLmHeadChunk = 1024;

}  // namespace

template <typename T>
GptModel<T>::GptModel(const ModelConfig& mc, const LoraConfig& lc, Communicator& comm, int max_B, int max_T,
                      bool recompute, const ComputeOps<T>& ops)
    : mc_(mc), lc_(lc), comm_(comm), ops_(ops), arch_(arch_spec(mc)),
      dims_(arch_, comm.size(Group::TP), comm.rank(Group::TP)), head_(arch_.tied_head ? "wte" : "lm_head"),
      max_M_(max_B * max_T), recompute_(recompute), full_(!lc.enabled),
      base_layout_(lora::base_layout(mc, dims_.tp)), lora_layout_(lora::lora_layout(mc, lc_, dims_.tp)),
      dtype_(parse_dtype(mc.dtype)) {
  if (full_ && dtype_ != DType::F32)
    throw std::invalid_argument(std::string("full fine-tuning (lora.enabled: false) trains fp32 weights, not model.dtype ") +
                                dtype_name(dtype_));
  base_.assign(base_layout_.total, T(0));
  if (full_) base_grad_.assign(base_layout_.total, T(0));
  base_bf16_.assign(base_layout_.total_bf16, 0);
  base_nf4_.assign(base_layout_.total_nf4, 0);
  nf4_staging_.bytes = base_nf4_.data();
  nf4_staging_.tp_rank = dims_.tp_rank;
  lora_.assign(lora_layout_.total, T(0));
  lora_grad_.assign(lora_layout_.total, T(0));
  cp_.base = backend_copy(base_, cp_.base_copy);
  cp_.base_bf16 = backend_copy(base_bf16_, cp_.base_bf16_copy);
  cp_.base_nf4 = backend_copy(base_nf4_, cp_.base_nf4_copy);
  cp_.lora = backend_copy(lora_, cp_.lora_copy);
  cp_.lora_grad = backend_copy(lora_grad_, cp_.lora_grad_copy);
  cp_.base_grad = backend_copy(base_grad_, cp_.base_grad_copy);
  const size_t M = max_M_, d = dims_.d;
  resid_.resize(mc.n_layer + 1);
  for (auto& r : resid_) r = buffer(M * d);
  for (auto* v : {&lnf_, &dlnf_, &dres_, &dln_, &y_}) *v = buffer(M * d);
  for (auto* v : {&lnf_mean_, &lnf_rstd_}) *v = buffer(M);
  const size_t mlp_up = arch_.mlp_up_width() / dims_.tp;  // this rank's columns of h: fc, or gate|up
  dqkv_ = buffer(M * dims_.qkv_local());
  datt_ = buffer(M * dims_.ql);
  dh_ = buffer(M * mlp_up);
  if (arch_.mlp == MlpKind::SwiGlu) dg_ = buffer(M * dims_.ffl);  // GELU's backward runs in place in dh_
  if (arch_.position == PositionKind::Rotary) {  // cos and sin of every position, computed once
    const std::vector<double> inv_freq = rope_inv_freq(dims_.head_dim, arch_.rope_theta, arch_.rope_scaling);
    const size_t n = static_cast<size_t>(mc.context) * inv_freq.size();
    std::vector<T> cos(n), sin(n);
    rope_tables(cos.data(), sin.data(), inv_freq, 0, mc.context);
    rope_cos_ = buffer(n);
    rope_sin_ = buffer(n);
    rope_cos_.upload(cos.data(), n);
    rope_sin_.upload(sin.data(), n);
  }
  const size_t chunk = std::min<size_t>(kLmHeadChunk, M);
  if (fused_lm_head()) {  // one L2-sized tile instead of chunk x V/tp logits
    const LmTileShape tile = lm_tile_shape();
    set_lm_tile(tile.rows, tile.cols);
    lm_rows_.assign(M, 0);
    lm_targets_.assign(M, 0);
  } else {
    logits_chunk_ = buffer(chunk * dims_.vocab_local);
  }
  ce_max_ = buffer(chunk);
  ce_stats_ = buffer(2 * chunk);
  ce_weight_ = buffer(chunk);
  ce_host_max_.assign(chunk, T(0));
  ce_host_stats_.assign(2 * chunk, T(0));
  ce_host_weight_.assign(chunk, T(0));
  if (!ops_.memory->is_host) {
    inputs_copy_ = ComputeBuffer<int32_t>(*ops_.memory, M);
    targets_copy_ = ComputeBuffer<int32_t>(*ops_.memory, M);
  }
  build_layers();
  acts_.resize(recompute ? 1 : mc.n_layer);
  for (BlockActivations& A : acts_) {
    for (auto* v : {&A.x_mid, &A.ln1, &A.ln2}) *v = buffer(M * d);
    for (auto* v : {&A.ln1_mean, &A.ln1_rstd, &A.ln2_mean, &A.ln2_rstd}) *v = buffer(M);
    A.qkv_out = buffer(M * dims_.qkv_local());
    A.att = buffer(M * dims_.ql);
    A.lse = buffer(static_cast<size_t>(max_B) * dims_.local_heads * max_T);
    A.h = buffer(M * mlp_up);
    A.g = buffer(M * dims_.ffl);
  }
  point_lora_buffers();
  if (!ops_.memory->is_host) timers_.synchronize = ops_.synchronize;
}

template <typename T>
template <typename E>
E* GptModel<T>::backend_copy(std::vector<E>& host, ComputeBuffer<E>& copy) {
  if (ops_.memory->is_host) return host.data();
  copy = ComputeBuffer<E>(*ops_.memory, host.size());
  return copy.data();
}

template <typename T>
void GptModel<T>::upload_frozen() {
  if (ops_.memory->is_host || full_) return;  // full fine-tuning freezes nothing: upload_trainable moves the base
  cp_.base_copy.upload(base_.data(), base_.size());
  cp_.base_bf16_copy.upload(base_bf16_.data(), base_bf16_.size());
  cp_.base_nf4_copy.upload(base_nf4_.data(), base_nf4_.size());
}

template <typename T>
void GptModel<T>::upload_trainable() {
  if (ops_.memory->is_host) return;
  if (full_) cp_.base_copy.upload(base_.data(), base_.size());
  else cp_.lora_copy.upload(lora_.data(), lora_.size());
}

template <typename T>
void GptModel<T>::download_gradients() {
  if (ops_.memory->is_host) return;
  if (full_) cp_.base_grad_copy.download(base_grad_.data(), base_grad_.size());
  else cp_.lora_grad_copy.download(lora_grad_.data(), lora_grad_.size());
}

template <typename T>
const int32_t* GptModel<T>::backend_tokens(const int32_t* host, ComputeBuffer<int32_t>& copy, size_t n) {
  if (ops_.memory->is_host || !host) return host;
  copy.upload(host, n);
  return copy.data();
}

// Every layer's adapters get their saved buffers in their layer's activations (all layers
// the same ones with recompute) and the one shared backward scratch.
template <typename T>
void GptModel<T>::point_lora_buffers() {
  size_t saved = 0, widest = 0;
  for (auto* lin : {&layers_[0].qkv.lora, &layers_[0].proj.lora, &layers_[0].fc1.lora, &layers_[0].fc2.lora})
    for (const auto& a : *lin) {
      saved += LoraAdapter<T>::saved_size(max_M_, a.r, a.K, a.dropout);
      if (a.dropout > 0) widest = std::max<size_t>(widest, a.K);
    }
  for (BlockActivations& A : acts_) A.lora_saved = buffer(saved);
  if (saved > 0) lora_du_ = buffer(static_cast<size_t>(max_M_) * lc_.r);
  lora_dx_drop_ = buffer(static_cast<size_t>(max_M_) * widest);
  for (int l = 0; l < mc_.n_layer; ++l) {
    Layer& L = layers_[l];
    L.act = &acts_[recompute_ ? 0 : l];
    T* next = L.act->lora_saved.data();
    for (auto* lin : {&L.qkv.lora, &L.proj.lora, &L.fc1.lora, &L.fc2.lora})
      for (auto& a : *lin) {
        a.u = next;
        a.x_drop = a.dropout > 0 ? next + static_cast<size_t>(max_M_) * a.r : nullptr;
        next += LoraAdapter<T>::saved_size(max_M_, a.r, a.K, a.dropout);
        a.du = lora_du_.data();
        a.dx_drop = a.dropout > 0 ? lora_dx_drop_.data() : nullptr;
      }
  }
}

template <typename T>
T* GptModel<T>::base_tensor(const std::string& name) {
  const TensorSpec& s = base_layout_.at(name);
  if (s.dtype != DType::F32)
    throw std::logic_error("base_tensor: '" + name + "' is stored in " + dtype_name(s.dtype) + "; use weight()");
  return base_.data() + s.offset;
}

// With model.dtype nf4 the bf16 embeddings (and head) compute in fp32 like the NF4 matrices.
template <typename T>
WeightView<T> GptModel<T>::bf16_view(const uint16_t* p) const {
  WeightView<T> v(p);
  v.bf16_compute = dtype_ == DType::BF16;
  return v;
}

template <typename T>
WeightView<T> GptModel<T>::weight(const std::string& name) {
  const TensorSpec& s = base_layout_.at(name);
  if (s.dtype == DType::BF16) return bf16_view(base_bf16_.data() + s.offset);
  if (s.dtype == DType::NF4) return WeightView<T>(static_cast<const uint8_t*>(base_nf4_.data() + s.offset), &s.nf4);
  return WeightView<T>(static_cast<const T*>(base_.data() + s.offset));
}

template <typename T>
T* GptModel<T>::backend_tensor(const std::string& name) {
  base_tensor(name);  // the same refusal of a bf16 or NF4 tensor
  return cp_.base + base_layout_.at(name).offset;
}

template <typename T>
WeightView<T> GptModel<T>::backend_weight(const std::string& name) {
  const TensorSpec& s = base_layout_.at(name);
  if (s.dtype == DType::BF16) return bf16_view(cp_.base_bf16 + s.offset);
  if (s.dtype == DType::NF4) return WeightView<T>(static_cast<const uint8_t*>(cp_.base_nf4 + s.offset), &s.nf4);
  return WeightView<T>(static_cast<const T*>(cp_.base + s.offset));
}

template <typename T>
T* GptModel<T>::backend_grad(const std::string& name) {
  return full_ ? cp_.base_grad + base_layout_.at(name).offset : nullptr;
}

template <typename T>
size_t GptModel<T>::frozen_matrix_bytes() const {
  size_t n = 0;
  for (const TensorSpec& s : base_layout_.tensors)
    if (s.rows > 1 && s.cols > 1)
      n += s.dtype == DType::NF4 ? s.nf4.bytes : s.local_size() * (s.dtype == DType::BF16 ? 2 : sizeof(T));
  return n;
}

template <typename T>
void GptModel<T>::base_tensor_values(const TensorSpec& s, T* out) const {
  if (s.dtype == DType::NF4) return nf4_dequantize_rows(base_nf4_.data() + s.offset, s.nf4, 0, s.local_rows, out);
  for (size_t i = 0; i < s.local_size(); ++i)
    out[i] = s.dtype == DType::BF16 ? static_cast<T>(bf16_to_float(base_bf16_[s.offset + i])) : base_[s.offset + i];
}

template <typename T>
size_t GptModel<T>::first_nonfinite_in(const TensorSpec& s) const {
  if (s.dtype == DType::NF4) return s.local_size();  // codes times finite scales: refused at quantization
  for (size_t i = 0; i < s.local_size(); ++i) {
    const double v = s.dtype == DType::BF16 ? bf16_to_float(base_bf16_[s.offset + i]) : double(base_[s.offset + i]);
    if (!std::isfinite(v)) return i;
  }
  return s.local_size();
}

template <typename T>
void GptModel<T>::attach_lora(int l, int target, int out_col, std::vector<LoraAdapter<T>>& into) {
  if (!lc_.enabled || !lc_.targets[target]) return;
  const std::string name = lora_pair_name(l, target);
  const TensorSpec& A = lora_layout_.at(name + "A");
  const TensorSpec& B = lora_layout_.at(name + "B");
  LoraAdapter<T> a;
  a.ops = &ops_;
  a.A = cp_.lora + A.offset;
  a.B = cp_.lora + B.offset;
  a.dA = cp_.lora_grad + A.offset;
  a.dB = cp_.lora_grad + B.offset;
  a.r = lc_.r;
  a.K = A.local_cols;
  a.N = B.local_rows;
  a.out_col = out_col;
  a.first_feature = static_cast<uint32_t>(A.global_col(0, dims_.tp_rank));
  a.site = lora_stream(arch_, l, target);
  a.scale = static_cast<T>(lc_.scale());
  a.dropout = lc_.dropout;
  into.push_back(std::move(a));
}

template <typename T>
typename GptModel<T>::Norm GptModel<T>::norm_params(const std::string& name) {
  Norm n;
  n.w = backend_tensor(name + ".weight");
  n.dw = backend_grad(name + ".weight");
  if (arch_.norm_bias) {
    n.b = backend_tensor(name + ".bias");
    n.db = backend_grad(name + ".bias");
  }
  return n;
}

// A linear layer's views: its weight, its bias where the spec has one, their gradients in
// full fine-tuning.
template <typename T>
template <typename Linear>
void GptModel<T>::point_linear(Linear& lin, const std::string& name, bool has_bias, int K, int N) {
  lin.ops = &ops_;
  lin.W = backend_weight(name + ".weight");
  lin.dW = backend_grad(name + ".weight");
  if (has_bias) {
    lin.b = backend_tensor(name + ".bias");
    lin.db = backend_grad(name + ".bias");
  }
  lin.K = K;
  lin.N = N;
}

template <typename T>
void GptModel<T>::build_layers() {
  layers_.resize(mc_.n_layer);
  const int d = dims_.d, ql = dims_.ql, kvl = dims_.kvl, ffl = dims_.ffl;
  const bool swiglu = arch_.mlp == MlpKind::SwiGlu;
  for (int l = 0; l < mc_.n_layer; ++l) {
    Layer& L = layers_[l];
    const std::string h = "h." + std::to_string(l) + ".";
    L.ln1 = norm_params(h + "ln_1");
    L.ln2 = norm_params(h + "ln_2");
    point_linear(L.qkv, h + "attn.qkv", arch_.qkv_bias, d, dims_.qkv_local());  // column-parallel [q | k | v]
    attach_lora(l, kQ, 0, L.qkv.lora);
    attach_lora(l, kK, ql, L.qkv.lora);
    attach_lora(l, kV, ql + kvl, L.qkv.lora);
    point_linear(L.proj, h + "attn.proj", arch_.o_bias, ql, d);  // row-parallel
    attach_lora(l, kO, 0, L.proj.lora);
    point_linear(L.fc1, h + "mlp.fc", arch_.mlp_bias, d, swiglu ? 2 * ffl : ffl);  // column-parallel fc, or [gate | up]
    if (swiglu) {
      attach_lora(l, kGate, 0, L.fc1.lora);
      attach_lora(l, kUp, ffl, L.fc1.lora);
    } else {
      attach_lora(l, kFc1, 0, L.fc1.lora);
    }
    point_linear(L.fc2, h + "mlp.proj", arch_.mlp_bias, ffl, d);  // row-parallel fc2, or down
    attach_lora(l, swiglu ? kDown : kFc2, 0, L.fc2.lora);
  }
  lnf_params_ = norm_params("ln_f");
}

template <typename T>
void GptModel<T>::init_base_from_seed(uint64_t seed) {
  const double std_resid = mc_.init_std / std::sqrt(2.0 * mc_.n_layer);  // GPT-2: scaled residual projections
  for (size_t ti = 0; ti < base_layout_.tensors.size(); ++ti) {
    const TensorSpec& s = base_layout_.tensors[ti];
    // Norm gains 1, norm and linear biases 0; matrices normal (GPT-2's scheme, for both families).
    const T constant = s.role == TensorRole::NormGain ? T(1) : T(0);
    const bool random = s.role != TensorRole::NormGain && s.role != TensorRole::NormBias && s.role != TensorRole::Bias;
    const double std_dev = s.role == TensorRole::Positions        ? mc_.init_std / 2
                           : s.role == TensorRole::ResidualWeight ? std_resid
                                                                  : mc_.init_std;
    std::vector<float> staged;  // NF4: the rank's rows in fp32, quantized below
    if (s.dtype == DType::NF4) staged.resize(s.local_size());
    T* dst = s.dtype == DType::F32 ? base_.data() + s.offset : nullptr;
    uint16_t* dst16 = s.dtype == DType::BF16 ? base_bf16_.data() + s.offset : nullptr;
#pragma omp parallel for schedule(static)
    for (int lr = 0; lr < s.local_rows; ++lr) {
      const int gr = s.global_row(lr, dims_.tp_rank);
      for (int lc = 0; lc < s.local_cols; ++lc) {
        T value = constant;
        if (gr >= s.rows) value = 0;  // vocabulary padding
        else if (random) {
          const uint64_t gi = static_cast<uint64_t>(gr) * s.cols + s.global_col(lc, dims_.tp_rank);
          value = static_cast<T>(normal_element(seed, RngPurpose::BaseInit, static_cast<uint32_t>(ti), gi, std_dev));
        }
        const size_t i = static_cast<size_t>(lr) * s.local_cols + lc;
        if (dst16) dst16[i] = float_to_bf16(static_cast<float>(value));  // round to nearest even
        else if (dst) dst[i] = value;
        else staged[i] = static_cast<float>(value);
      }
    }
    if (s.dtype == DType::NF4) nf4_staging_.quantize(s, staged.data());
  }
  finish_nf4();
}

template <typename T>
void GptModel<T>::finish_nf4() {
  std::vector<float> all;
  for (auto& [name, absmax] : nf4_staging_.absmax) {
    const TensorSpec& s = base_layout_.at(name);
    const size_t n = absmax.size();
    all.resize(n * dims_.tp);
    if (ops_.memory->is_host) {
      comm_.all_gather(absmax.data(), n, all.data(), Group::TP);  // every rank's block absmax
    } else {  // the communicator reaches the backend's memory
      ComputeBuffer<float> send(*ops_.memory, n), recv(*ops_.memory, n * dims_.tp);
      send.upload(absmax.data(), n);
      comm_.all_gather(send.data(), n, recv.data(), Group::TP);
      recv.download(all.data(), n * dims_.tp);
    }
    nf4_finish_local(s, dims_.tp, dims_.tp_rank, all.data(), base_nf4_.data() + s.offset);
  }
  nf4_staging_.absmax.clear();
  nf4_staging_.absmax.shrink_to_fit();
}

template <typename T>
void GptModel<T>::init_lora(uint64_t seed) {
  std::fill(lora_.begin(), lora_.end(), T(0));  // B = 0: training starts at the base model
  if (!lc_.enabled) return;
  for (int l = 0; l < mc_.n_layer; ++l)
    for (const int t : arch_.lora_targets) {
      if (!lc_.targets[t]) continue;
      const TensorSpec& s = lora_layout_.at(lora_pair_name(l, t) + "A");
      const double bound = 1.0 / std::sqrt(static_cast<double>(s.cols));  // kaiming_uniform_(a=sqrt(5))
      T* dst = lora_.data() + s.offset;
      for (int lr = 0; lr < s.local_rows; ++lr)
        for (int lc = 0; lc < s.local_cols; ++lc) {
          const uint64_t gi = static_cast<uint64_t>(lr) * s.cols + s.global_col(lc, dims_.tp_rank);
          dst[static_cast<size_t>(lr) * s.local_cols + lc] =
              static_cast<T>(uniform_element(seed, RngPurpose::LoraInit, lora_stream(arch_, l, t), gi, bound));
        }
    }
}

template <typename T>
void GptModel<T>::zero_grads() {
  std::fill(lora_grad_.begin(), lora_grad_.end(), T(0));
  std::fill(base_grad_.begin(), base_grad_.end(), T(0));
  if (ops_.memory->is_host) return;
  cp_.lora_grad_copy.zero(lora_grad_.size());
  cp_.base_grad_copy.zero(base_grad_.size());
}

template <typename T>
void GptModel<T>::merge_lora(bool merged) {
  if (dtype_ == DType::NF4)
    throw std::logic_error("merge_lora: NF4 weights are not merged in place; lora_dist export --merged dequantizes them");
  if (!ops_.memory->is_host)
    throw std::logic_error(std::string("merge_lora: the ") + ops_.name +
                           " backend does not merge; merge on the CPU (lora_dist export --merged)");
  for (Layer& L : layers_) {
    L.qkv.merge(merged);
    L.proj.merge(merged);
    L.fc1.merge(merged);
    L.fc2.merge(merged);
  }
}

// The few places the families differ, each behind one call of the block.
template <typename T>
void GptModel<T>::norm_forward(T* out, T* mean, T* rstd, const T* x, const Norm& n, int M) {
  if (arch_.norm == NormKind::LayerNorm) ops_.layernorm_forward(out, mean, rstd, x, n.w, n.b, M, dims_.d, arch_.norm_eps);
  else ops_.rmsnorm_forward(out, rstd, x, n.w, M, dims_.d, arch_.norm_eps);
}

// dx += the norm's input gradient; in full fine-tuning also its parameters' gradients.
template <typename T>
void GptModel<T>::norm_backward(T* dx, const T* dout, const T* x, const T* mean, const T* rstd, const Norm& n, int M) {
  const int d = dims_.d;
  if (arch_.norm == NormKind::LayerNorm) {
    ops_.layernorm_backward(dx, dout, x, mean, rstd, n.w, M, d);
    if (n.dw) ops_.layernorm_backward_params(n.dw, n.db, dout, x, mean, rstd, M, d);
  } else {
    ops_.rmsnorm_backward(dx, dout, x, rstd, n.w, M, d);
    if (n.dw) ops_.rmsnorm_backward_weight(n.dw, dout, x, rstd, M, d);
  }
}

template <typename T>
void GptModel<T>::mlp_activation_forward(T* g, const T* h, int M) {
  if (arch_.mlp == MlpKind::Gelu) ops_.gelu_forward(g, h, static_cast<size_t>(M) * dims_.ffl);
  else ops_.swiglu_forward(g, h, M, dims_.ffl);
}

template <typename T>
void GptModel<T>::mlp_activation_backward(T* dh, const T* dg, const T* h, int M) {
  if (arch_.mlp == MlpKind::Gelu) ops_.gelu_backward(dh, dg, h, static_cast<size_t>(M) * dims_.ffl);
  else ops_.swiglu_backward(dh, dg, h, M, dims_.ffl);
}

// RoPE on the q and k heads, which lie side by side at the start of each qkv row; rows are
// sequences of Tn positions from pos0. The backward rotates their gradients back.
template <typename T>
void GptModel<T>::rope(T* qkv, int rows, int Tn, int pos0, bool backward) {
  if (arch_.position != PositionKind::Rotary) return;
  const size_t at = static_cast<size_t>(pos0) * (dims_.head_dim / 2);
  const int heads = dims_.local_heads + dims_.local_kv_heads;
  (backward ? ops_.rope_backward : ops_.rope_forward)(qkv, rope_cos_.data() + at, rope_sin_.data() + at, rows, Tn, heads,
                                                      dims_.head_dim, dims_.qkv_local());
}

template <typename T>
void GptModel<T>::block_forward(int l, const MicroBatch& mb, const DropoutContext& ctx, T* out, KvCache<T>* cache) {
  const int M = mb.B * mb.Tn;
  const size_t Md = static_cast<size_t>(M) * dims_.d;
  Layer& L = layers_[l];
  BlockActivations& A = *L.act;
  const T* x = resid_[l].data();
  {
    Stopwatch t(timers_, "fwd norm");
    norm_forward(A.ln1.data(), A.ln1_mean.data(), A.ln1_rstd.data(), x, L.ln1, M);
  }
  {
    Stopwatch t(timers_, "fwd qkv (+lora)");
    L.qkv.forward(A.qkv_out.data(), A.ln1.data(), M, ctx);
    rope(A.qkv_out.data(), M, mb.Tn, cache ? cache->length : 0, /*backward=*/false);
  }
  {
    Stopwatch t(timers_, "fwd attention");
    if (cache) {
      cache->append(l, A.qkv_out.data(), M, dims_.ql);
      ops_.attention_forward_cached(A.att.data(), A.qkv_out.data(), dims_.qkv_local(), cache->k[l].data(),
                                    cache->v[l].data(), M, cache->length, dims_.local_heads, dims_.local_kv_heads,
                                    dims_.head_dim);
    } else {
      ops_.attention_forward(A.att.data(), A.lse.data(), A.qkv_out.data(), mb.B, mb.Tn, dims_.local_heads,
                             dims_.local_kv_heads, dims_.head_dim);
    }
  }
  {
    Stopwatch t(timers_, "fwd attn proj (+lora, tp all-reduce)");
    L.proj.forward(y_.data(), A.att.data(), M, ctx, comm_);
  }
  {
    Stopwatch t(timers_, "fwd residual+norm");
    ops_.residual_forward(A.x_mid.data(), x, y_.data(), Md);
    norm_forward(A.ln2.data(), A.ln2_mean.data(), A.ln2_rstd.data(), A.x_mid.data(), L.ln2, M);
  }
  {
    Stopwatch t(timers_, "fwd fc1 (+lora) + activation");
    L.fc1.forward(A.h.data(), A.ln2.data(), M, ctx);
    mlp_activation_forward(A.g.data(), A.h.data(), M);
  }
  if (!out) {  // a recompute: fc2's backward needs its LoRA branches' u, not its output
    Stopwatch t(timers_, "fwd fc2 lora (saved activations only)");
    L.fc2.recompute_saved(A.g.data(), M, ctx);
    return;
  }
  Stopwatch t(timers_, "fwd fc2 (+lora, tp all-reduce) + residual");
  L.fc2.forward(y_.data(), A.g.data(), M, ctx, comm_);
  ops_.residual_forward(out, A.x_mid.data(), y_.data(), Md);
}

template <typename T>
void GptModel<T>::forward_blocks(const MicroBatch& mb, const DropoutContext& ctx, KvCache<T>* cache) {
  const int M = mb.B * mb.Tn, d = dims_.d, pos0 = cache ? cache->length : 0;
  if (M > max_M_ || pos0 + mb.Tn > mc_.context)
    throw std::runtime_error("micro-batch " + std::to_string(mb.B) + "x" + std::to_string(mb.Tn) +
                             " exceeds the allocated activations");
  const size_t Md = static_cast<size_t>(M) * d;
  T* x0 = resid_[0].data();
  {
    Stopwatch t(timers_, "fwd embedding (+tp all-reduce)");
    const int32_t* tokens = backend_tokens(mb.inputs, inputs_copy_, M);
    ops_.embedding_forward(x0, tokens, backend_weight("wte"), dims_.vocab_start, dims_.vocab_local, M, d);
    reduce_from_tp_region(comm_, x0, Md);  // vocab-parallel embedding: each row came from one TP rank
    if (arch_.position == PositionKind::Learned) ops_.add_positions(x0, backend_weight("wpe"), mb.B, mb.Tn, d, pos0);
  }
  for (int l = 0; l < mc_.n_layer; ++l) block_forward(l, mb, ctx, resid_[l + 1].data(), cache);
  Stopwatch t(timers_, "fwd norm");
  norm_forward(lnf_.data(), lnf_mean_.data(), lnf_rstd_.data(), resid_[mc_.n_layer].data(), lnf_params_, M);
}

// The CPU backend fuses the LM head with the cross-entropy (model/ops/cpu/fused_lm_head.h);
// the CUDA backend keeps the chunked path below (a chunk x V/tp logits buffer and the ops of
// model/ops/cross_entropy.h), and so does an NF4 head (never made: heads are bf16 under nf4).
template <typename T>
bool GptModel<T>::fused_lm_head() const {
  return !unfused_lm_head_ && ops_.memory->is_host && base_layout_.at(head_).dtype != DType::NF4;
}

template <typename T>
void GptModel<T>::set_lm_tile(int rows, int cols) {
  lm_shape_ = {std::max(1, rows), std::max(1, cols)};
  lm_tile_ = buffer(std::min<size_t>(lm_shape_.rows, max_M_) * std::min(lm_shape_.cols, dims_.vocab_local));
}

template <typename T>
void GptModel<T>::use_unfused_lm_head() {
  unfused_lm_head_ = true;
  if (logits_chunk_.size() == 0) logits_chunk_ = buffer(std::min<size_t>(kLmHeadChunk, max_M_) * dims_.vocab_local);
}

template <typename T>
double GptModel<T>::lm_head_loss_fused(const MicroBatch& mb, double loss_tokens, bool grad) {
  const int M = mb.B * mb.Tn, d = dims_.d, Vl = dims_.vocab_local, v0 = dims_.vocab_start;
  const int valid = std::clamp(dims_.vocab - v0, 0, Vl);
  const WeightView<T> head = backend_weight(head_);
  const int R = std::min(lm_shape_.rows, M), Vt = std::max(1, std::min(lm_shape_.cols, Vl));
  // Rows whose loss mask is 0 never enter the head: the others are gathered (into y_ and dln_,
  // free between the blocks' forward and backward) unless every row counts.
  int n = 0;
  for (int i = 0; i < M; ++i)
    if (mb.loss_mask[i] != 0.0f) {
      lm_rows_[n] = i;
      lm_targets_[n++] = mb.targets[i] - v0;
    }
  const bool gathered = n != M;
  const size_t row_bytes = sizeof(T) * d;
  T* X = lnf_.data();
  T* A = dlnf_.data();
  if (gathered) {
    X = y_.data();
    A = dln_.data();
    for (int r = 0; r < n; ++r) std::memcpy(X + static_cast<size_t>(r) * d, lnf_.data() + static_cast<size_t>(lm_rows_[r]) * d, row_bytes);
  }
  T* tile = lm_tile_.data();
  T* grad_head = grad && full_ ? backend_grad(head_) : nullptr;
  double loss = 0;
  for (int c0 = 0; c0 < n; c0 += kLmHeadChunk) {
    // A chunk of rows is the unit of the TP all-reduces (as in the unfused path: mc maxima, then
    // 2 mc sums); within it the tiles run vocabulary-outer, so each head slice is read once.
    const int mc = std::min(kLmHeadChunk, n - c0);
    T* lmax = ce_max_.data();
    T* stats = ce_stats_.data();
    T* weight = ce_weight_.data();
    T* gmax = ce_host_max_.data();
    const int32_t* tl = lm_targets_.data() + c0;
    T* Xc = X + static_cast<size_t>(c0) * d;
    T* Ac = A + static_cast<size_t>(c0) * d;
    // A bf16 head on a CPU that widens it: the chunk's rows rounded to bf16 once here, each
    // vocabulary slice widened once below, instead of both in each of the slice's GEMMs.
    const T* Xs = frozen_gemm_staged_input(Xc, mc, d, head);
    if (valid == 0) {  // a rank holding only padding columns
      std::fill(lmax, lmax + mc, -std::numeric_limits<T>::infinity());
      std::fill(stats, stats + 2 * mc, T(0));
      if (grad) std::fill(Ac, Ac + static_cast<size_t>(mc) * d, T(0));
    }
    for (int vc = 0; vc < valid; vc += Vt) {
      const int cols = std::min(Vt, valid - vc);
      const WeightView<T> w = frozen_gemm_staged_rows(head, vc, vc + cols, d);
      // The dX GEMM's dy is the unnormalised probabilities; the target's -1 is subtracted after
      // the all-reduces, so near-certain rows cancel: a bf16 head's dX GEMM runs in fp32 on the
      // widened weight (bf16_compute off) instead of rounding dy to bf16, which lost ~2^-9 of
      // p_target against the small 1 - p_target (model.dtype bf16 drifted 9 % apart over tp in
      // tests/mpi/layout_invariance.cpp). The forward GEMM rounds its input as before.
      WeightView<T> w_dx = w;
      w_dx.bf16_compute = false;
      for (int r0 = 0; r0 < mc; r0 += R) {
        const int rr = std::min(R, mc - r0);
        T* acc = grad ? Ac + static_cast<size_t>(r0) * d : nullptr;
        ops_.linear_forward(tile, Xs + static_cast<size_t>(r0) * d, w, nullptr, rr, d, cols);
        lm_tile_online_softmax(tile, rr, cols, vc, tl + r0, lmax + r0, stats + 2 * r0, acc, d, vc == 0);
        if (grad) ops_.linear_backward_input(acc, tile, w_dx, rr, d, cols, /*accumulate=*/vc != 0);
      }
    }
    std::copy(lmax, lmax + mc, gmax);
    comm_.all_reduce_max(gmax, mc, Group::TP);  // vocab-parallel CE: global max per token
    for (int i = 0; i < mc; ++i)
      stats[2 * i] = lmax[i] == -std::numeric_limits<T>::infinity() ? T(0) : stats[2 * i] * static_cast<T>(std::exp(lmax[i] - gmax[i]));
    comm_.all_reduce_sum(stats, 2 * static_cast<size_t>(mc), Group::TP);  // global sum exp, target logit
    for (int i = 0; i < mc; ++i) {
      weight[i] = static_cast<T>(mb.loss_mask[lm_rows_[c0 + i]] / loss_tokens);
      loss += static_cast<double>(weight[i]) *
              (std::log(static_cast<double>(stats[2 * i])) + gmax[i] - stats[2 * i + 1]);
    }
    if (!grad) continue;
    lm_rows_finalize(Ac, mc, d, lmax, gmax, stats, weight, tl, valid, head);
    if (!grad_head) continue;
    // Full fine-tuning: the head's gradient needs the normalised softmax, so a second pass
    // recomputes each tile's logits and adds its dW (tied: the table's LM-head share).
    for (int vc = 0; vc < valid; vc += Vt) {
      const int cols = std::min(Vt, valid - vc);
      const WeightView<T> w = head.offset(static_cast<size_t>(vc) * d);
      for (int r0 = 0; r0 < mc; r0 += R) {
        const int rr = std::min(R, mc - r0);
        const T* x = Xc + static_cast<size_t>(r0) * d;
        ops_.linear_forward(tile, x, w, nullptr, rr, d, cols);
        ops_.vocab_cross_entropy_backward(tile, gmax + r0, stats + 2 * r0, tl + r0, weight + r0, vc, rr, cols, cols);
        ops_.linear_backward_weight(grad_head + static_cast<size_t>(vc) * d, nullptr, tile, x, rr, d, cols);
      }
    }
  }
  if (!grad) return loss;
  if (gathered) {  // masked rows' gradient is 0; the others go back to their places
    dlnf_.zero(static_cast<size_t>(M) * d);
    for (int r = 0; r < n; ++r) std::memcpy(dlnf_.data() + static_cast<size_t>(lm_rows_[r]) * d, A + static_cast<size_t>(r) * d, row_bytes);
  }
  // The LM head is column-parallel over the vocabulary: its input gradient is a TP partial sum.
  copy_to_tp_region_backward(comm_, dlnf_.data(), static_cast<size_t>(M) * d);
  return loss;
}

template <typename T>
double GptModel<T>::lm_head_loss(const MicroBatch& mb, double loss_tokens, bool grad) {
  Stopwatch t(timers_, grad ? "lm head + cross-entropy, fwd+bwd" : "lm head + cross-entropy, fwd");
  if (fused_lm_head()) return lm_head_loss_fused(mb, loss_tokens, grad);
  const int M = mb.B * mb.Tn, d = dims_.d, Vl = dims_.vocab_local, v0 = dims_.vocab_start;
  const int valid = std::clamp(dims_.vocab - v0, 0, Vl);
  const WeightView<T> head = backend_weight(head_);
  const int32_t* all_targets = backend_tokens(mb.targets, targets_copy_, M);
  double loss = 0;
  for (int c0 = 0; c0 < M; c0 += kLmHeadChunk) {
    const int mc = std::min(kLmHeadChunk, M - c0);
    const int32_t* targets = all_targets + c0;
    T* logits = logits_chunk_.data();
    ops_.linear_forward(logits, lnf_.data() + static_cast<size_t>(c0) * d, head, nullptr, mc, d, Vl);
    ops_.vocab_logits_max(ce_max_.data(), logits, mc, Vl, valid);
    comm_.all_reduce_max(ce_max_.data(), mc, Group::TP);  // vocab-parallel CE: global max per token
    ops_.vocab_sumexp_and_target(ce_stats_.data(), logits, ce_max_.data(), targets, v0, mc, Vl, valid);
    comm_.all_reduce_sum(ce_stats_.data(), 2 * static_cast<size_t>(mc), Group::TP);  // global sum exp, target logit
    // The loss is summed on the host, in double: a few numbers per token cross from the backend.
    const T* row_max = ce_host_max_.data();
    const T* stats = ce_host_stats_.data();
    T* weight = ce_host_weight_.data();
    ce_max_.download(ce_host_max_.data(), mc);
    ce_stats_.download(ce_host_stats_.data(), 2 * static_cast<size_t>(mc));
    for (int i = 0; i < mc; ++i) {
      weight[i] = static_cast<T>(mb.loss_mask[c0 + i] / loss_tokens);
      if (mb.loss_mask[c0 + i] != 0.0f)
        loss += static_cast<double>(weight[i]) *
                (std::log(static_cast<double>(stats[2 * i])) + row_max[i] - stats[2 * i + 1]);
    }
    if (!grad) continue;
    ce_weight_.upload(weight, mc);
    ops_.vocab_cross_entropy_backward(logits, ce_max_.data(), ce_stats_.data(), targets, ce_weight_.data(), v0, mc, Vl,
                                      valid);
    if (full_)  // the head's gradient (tied: the table's LM-head share; the embedding's comes in the backward)
      ops_.linear_backward_weight(backend_grad(head_), nullptr, logits, lnf_.data() + static_cast<size_t>(c0) * d, mc,
                                  d, Vl);
    ops_.linear_backward_input(dlnf_.data() + static_cast<size_t>(c0) * d, logits, head, mc, d, Vl, /*accumulate=*/false);
  }
  // The LM head is column-parallel over the vocabulary: its input gradient is a TP partial sum.
  if (grad) copy_to_tp_region_backward(comm_, dlnf_.data(), static_cast<size_t>(M) * d);
  return loss;
}

template <typename T>
void GptModel<T>::backward_blocks(const MicroBatch& mb, const DropoutContext& ctx) {
  const int M = mb.B * mb.Tn, d = dims_.d;
  dres_.zero(static_cast<size_t>(M) * d);
  norm_backward(dres_.data(), dlnf_.data(), resid_[mc_.n_layer].data(), lnf_mean_.data(), lnf_rstd_.data(), lnf_params_,
                M);
  // dres_ is the gradient of the residual stream; the residual adds pass it through unchanged.
  // GELU's backward runs in place in dh_; SwiGLU's reads dg_ and writes both halves of dh_.
  T* dg = arch_.mlp == MlpKind::Gelu ? dh_.data() : dg_.data();
  for (int l = mc_.n_layer - 1; l >= 0; --l) {
    Layer& L = layers_[l];
    const BlockActivations& A = *L.act;
    if (recompute_) {  // refill the shared activations: same inputs, same dropout keys, same values
      timers_.prefix = "recompute: ";
      block_forward(l, mb, ctx, /*out=*/nullptr);
      timers_.prefix.clear();
    }
    {
      Stopwatch t(timers_, "bwd fc2 (+lora) + activation");
      L.fc2.backward(dg, dres_.data(), A.g.data(), M, ctx);
      mlp_activation_backward(dh_.data(), dg, A.h.data(), M);
    }
    {
      Stopwatch t(timers_, "bwd fc1 (+lora, tp all-reduce)");
      L.fc1.backward(dln_.data(), dh_.data(), A.ln2.data(), M, ctx, comm_, /*need_dx=*/true);
    }
    {
      Stopwatch t(timers_, "bwd norm");
      norm_backward(dres_.data(), dln_.data(), A.x_mid.data(), A.ln2_mean.data(), A.ln2_rstd.data(), L.ln2, M);
    }
    {
      Stopwatch t(timers_, "bwd attn proj (+lora)");
      L.proj.backward(datt_.data(), dres_.data(), A.att.data(), M, ctx);
    }
    {
      Stopwatch t(timers_, "bwd attention");
      ops_.attention_backward(dqkv_.data(), datt_.data(), A.qkv_out.data(), A.att.data(), A.lse.data(), mb.B, mb.Tn,
                              dims_.local_heads, dims_.local_kv_heads, dims_.head_dim);
      rope(dqkv_.data(), M, mb.Tn, 0, /*backward=*/true);
    }
    // Below layer 0 is the embedding: frozen with LoRA (its input gradient would be thrown
    // away), trained in full fine-tuning.
    const bool need_dx = l > 0 || full_;
    {
      Stopwatch t(timers_, "bwd qkv (+lora, tp all-reduce)");
      L.qkv.backward(dln_.data(), dqkv_.data(), A.ln1.data(), M, ctx, comm_, need_dx);
    }
    if (need_dx) {
      Stopwatch t(timers_, "bwd norm");
      norm_backward(dres_.data(), dln_.data(), resid_[l].data(), A.ln1_mean.data(), A.ln1_rstd.data(), L.ln1, M);
    }
  }
  if (!full_) return;
  // dres_ is now the gradient of the embedding's output, whole on every TP rank: each rank
  // adds the rows of its own vocabulary slice; the position table is replicated.
  Stopwatch t(timers_, "bwd embedding (full fine-tuning)");
  const int32_t* tokens = ops_.memory->is_host ? mb.inputs : inputs_copy_.data();  // uploaded by the forward
  ops_.embedding_backward(backend_grad("wte"), dres_.data(), tokens, dims_.vocab_start, dims_.vocab_local, M, d);
  if (arch_.position == PositionKind::Learned) ops_.positions_backward(backend_grad("wpe"), dres_.data(), mb.B, mb.Tn, d, 0);
}

template <typename T>
double GptModel<T>::step(const MicroBatch& mb, double loss_tokens, const DropoutContext& ctx, bool grad) {
  forward_blocks(mb, ctx);
  const double loss = lm_head_loss(mb, loss_tokens, grad);
  if (grad) backward_blocks(mb, ctx);
  return loss;
}

template <typename T>
void GptModel<T>::logits(const MicroBatch& mb, std::vector<T>& out) {
  forward_blocks(mb, DropoutContext{});
  const int M = mb.B * mb.Tn;
  const size_t n = static_cast<size_t>(M) * dims_.vocab_local;
  out.resize(n);
  if (ops_.memory->is_host) return ops_.linear_forward(out.data(), lnf_.data(), backend_weight(head_), nullptr, M, dims_.d, dims_.vocab_local);
  ComputeBuffer<T> logits = buffer(n);
  ops_.linear_forward(logits.data(), lnf_.data(), backend_weight(head_), nullptr, M, dims_.d, dims_.vocab_local);
  logits.download(out.data(), n);
}

template <typename T>
void GptModel<T>::extend(const int32_t* tokens, int n, KvCache<T>& cache, std::vector<T>& logits_local) {
  if (!ops_.memory->is_host)  // the cache is host memory; generate runs on the CPU backend
    throw std::logic_error(std::string("extend: the ") + ops_.name + " backend has no KV cache; generate on the CPU");
  if (n < 1 || cache.length + n > cache.capacity)
    throw std::length_error("extend: " + std::to_string(n) + " tokens after " + std::to_string(cache.length) +
                            " do not fit the KV cache's " + std::to_string(cache.capacity) + " positions");
  const MicroBatch mb{tokens, nullptr, nullptr, 1, n};
  forward_blocks(mb, DropoutContext{}, &cache);
  cache.length += n;
  Stopwatch t(timers_, "lm head (last token)");
  logits_local.resize(dims_.vocab_local);
  ops_.linear_forward(logits_local.data(), lnf_.data() + static_cast<size_t>(n - 1) * dims_.d, backend_weight(head_),
                      nullptr, 1, dims_.d, dims_.vocab_local);
}

template class GptModel<float>;
template class GptModel<double>;

}  // namespace lora
