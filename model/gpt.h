// The decoder-only transformer of DESIGN §2 on one TP rank, with LoRA, forward and backward,
// built from an architecture spec (model/arch.h): GPT-2/GPT-3, or the Llama family. One block
// forward and one backward serve both; they branch on the spec at the few places the families
// differ (the norm, RoPE on q and k, the MLP's activation, the position table, the head).
// One buffer holds this rank's shard of every frozen weight, one all its LoRA parameters,
// one their gradients (llm.c's layout); layers are views into them.
// The ops run on a backend (model/compute_ops.h): the CPU's, where the ops read these host
// buffers themselves, or CUDA's, where they read device copies: the host buffers are then
// the masters that loaders, the optimizer and checkpoints use, moved by upload_frozen(),
// upload_trainable() and download_gradients() (which do nothing on the CPU backend).
#pragma once
#include <cstdint>
#include <vector>

#include "comm/communicator.h"
#include "model/arch.h"
#include "model/compute_ops.h"
#include "model/kv_cache.h"
#include "model/op_timers.h"
#include "model/ops/cpu/fused_lm_head.h"
#include "model/param_layout.h"
#include "model/parallel_linear.h"

namespace lora {

// One micro-batch: B sequences of Tn tokens, rows in global-batch order.
struct MicroBatch {
  const int32_t* inputs = nullptr;   // [B*Tn]
  const int32_t* targets = nullptr;  // [B*Tn]
  const float* loss_mask = nullptr;  // [B*Tn], 1 = the target counts in the loss
  int B = 0, Tn = 0;
};

template <typename T>
class GptModel {
 public:
  // Allocates this rank's shard of the base and its LoRA slices, activations for
  // micro-batches up to max_B x max_T. Base weights are zero until init_base_* or load.
  // With `recompute` (train.recompute: full, DESIGN §8) only each block's input is kept for
  // the backward, which re-runs the block's forward: same results, one block's activations.
  // `comm` must reach the backend's memory: the run's communicator on the CPU, NCCL or a
  // host-staged one on CUDA (comm/host_staged_communicator.h).
  GptModel(const ModelConfig& mc, const LoraConfig& lc, Communicator& comm, int max_B, int max_T,
           bool recompute = false, const ComputeOps<T>& ops = cpu_ops<T>());
  GptModel(const GptModel&) = delete;  // layers hold pointers into the buffers
  GptModel& operator=(const GptModel&) = delete;

  // GPT-2 initialisation, drawn per element of the full model (layout-invariant). With
  // model.dtype nf4 it ends with finish_nf4(): a collective of the TP group.
  void init_base_from_seed(uint64_t seed);
  // model.dtype nf4: the second phase of quantizing what a loader staged in nf4_staging()
  // (model/nf4_weight.h): the TP group gathers each staged matrix's block absmax and each rank
  // double-quantizes its part. A collective of the TP group; nothing to do without NF4.
  void finish_nf4();
  Nf4Staging& nf4_staging() { return nf4_staging_; }
  // A ~ U(+-1/sqrt(in)) (kaiming-uniform, a=sqrt(5)) per element of the full A; B = 0.
  void init_lora(uint64_t seed);

  // Forward (and, when `grad`, backward) of one micro-batch. Returns this rank's share of
  // the loss: sum over its tokens of mask * CE / loss_tokens, where loss_tokens counts the
  // loss tokens of the whole global batch (DESIGN §5). With grad, LoRA gradients are
  // accumulated into lora_grads() (call zero_grads() at the start of a step).
  double step(const MicroBatch& mb, double loss_tokens, const DropoutContext& ctx, bool grad);

  // This rank's vocabulary slice of the logits [B*Tn x vocab_local] (padding columns
  // included); for tests and inference.
  void logits(const MicroBatch& mb, std::vector<T>& out);

  // Incremental decoding (lora_dist generate): appends n tokens of one sequence at positions
  // cache.length .. cache.length+n-1 to `cache` and writes this rank's vocabulary slice of
  // the last token's logits [vocab_local] to `logits_local`. Same TP collectives as a
  // forward; the model must have been built with max_B * max_T >= n.
  void extend(const int32_t* tokens, int n, KvCache<T>& cache, std::vector<T>& logits_local);
  KvCache<T> make_kv_cache(int capacity) const { return KvCache<T>(mc_.n_layer, capacity, dims_.kvl); }

  void zero_grads();
  void merge_lora(bool merged);  // W0 += s B A (true) or -= (false); CPU backend, fp32/bf16 only

  // Host buffers -> the backend's copies: the frozen weights (after a load; none in full
  // fine-tuning) and the trainable parameters (after a load, each optimizer step and a resume).
  // Backend gradients -> trainable_grads().
  void upload_frozen();
  void upload_trainable();
  void download_gradients();
  // The gradients where the backend accumulates them (device memory on CUDA), for a
  // collective of `comm()` before download_gradients().
  T* backend_trainable_grads() { return full_ ? cp_.base_grad : cp_.lora_grad; }
  Communicator& comm() { return comm_; }
  const ComputeOps<T>& ops() const { return ops_; }

  const ArchSpec& arch() const { return arch_; }
  const TpDims& dims() const { return dims_; }
  const ParamLayout& base_layout() const { return base_layout_; }
  const LoraLayout& lora_layout() const { return lora_layout_; }
  // The frozen tensors in the model's type: all of them with model.dtype fp32, the norm
  // parameters and biases with bf16 (whose matrices are in base_bf16()).
  std::vector<T>& base() { return base_; }
  std::vector<uint16_t>& base_bf16() { return base_bf16_; }
  std::vector<uint8_t>& base_nf4() { return base_nf4_; }  // model.dtype nf4: the blocks' matrices
  DType dtype() const { return dtype_; }
  // Bytes of this rank's frozen weights, and of its frozen 2-D matrices alone.
  size_t frozen_bytes() const { return base_layout_.bytes(sizeof(T)); }
  size_t frozen_matrix_bytes() const;
  std::vector<T>& lora_params() { return lora_; }
  std::vector<T>& lora_grads() { return lora_grad_; }
  // Full fine-tuning (lora.enabled: false): the base weights are the trainable parameters and
  // this, in base_layout(), their gradients; empty with LoRA.
  bool full_finetuning() const { return full_; }
  std::vector<T>& base_grads() { return base_grad_; }
  // What the optimizer trains, whichever mode: the LoRA factors, or the base weights.
  // Tests: run the LM head unfused (a chunk x V/tp logits buffer and the ops of
  // model/ops/cross_entropy.h, as the CUDA backend does) instead of the CPU's fused tiles.
  void use_unfused_lm_head();
  bool lm_head_is_fused() const { return fused_lm_head(); }
  void set_lm_tile(int rows, int cols);  // tests: the fused path's tile shape
  std::vector<T>& trainable_params() { return full_ ? base_ : lora_; }
  std::vector<T>& trainable_grads() { return full_ ? base_grad_ : lora_grad_; }
  const ParamLayout& trainable_layout() const { return full_ ? static_cast<const ParamLayout&>(base_layout_) : lora_layout_; }
  // A tensor held in the model's type (throws for a bf16 one; use weight()).
  T* base_tensor(const std::string& name);
  WeightView<T> weight(const std::string& name);
  // This rank's values of frozen tensor s in T, whatever it is stored in (bf16 widened, NF4
  // dequantized): local_size() of them into out. Host buffers.
  void base_tensor_values(const TensorSpec& s, T* out) const;
  // Index of the first NaN/inf of a frozen tensor, or its size when all are finite.
  size_t first_nonfinite_in(const TensorSpec& s) const;
  OpTimers& timers() { return timers_; }

 private:
  // What a block keeps for its backward: residual stream after attention, norm outputs and
  // row statistics (LayerNorm: mean and rstd; RMSNorm: its rrms in the rstd buffer), qkv (q
  // and k rotated, with RoPE), attention output and per-row log-sum-exp (the blocked kernel
  // recomputes the T x T probabilities in backward), the MLP's first projection h (fc, or
  // gate|up) and its activation g, and its LoRA adapters' saved inputs. One per layer; with
  // recompute one for all layers, refilled in the backward.
  struct BlockActivations {
    ComputeBuffer<T> x_mid, ln1, ln1_mean, ln1_rstd, ln2, ln2_mean, ln2_rstd, qkv_out, lse, att, h, g;
    ComputeBuffer<T> lora_saved;  // each adapter's u (and x_drop), in attach order
  };
  // Where the ops read the parameters and write the gradients: the host vectors themselves
  // on the CPU backend, the *_copy buffers on another.
  struct BackendParams {
    T *base = nullptr, *lora = nullptr, *lora_grad = nullptr, *base_grad = nullptr;
    uint16_t* base_bf16 = nullptr;
    uint8_t* base_nf4 = nullptr;
    ComputeBuffer<T> base_copy, lora_copy, lora_grad_copy, base_grad_copy;
    ComputeBuffer<uint16_t> base_bf16_copy;
    ComputeBuffer<uint8_t> base_nf4_copy;
  };
  // A norm's parameters: b is null for RMSNorm; dw, db only in full fine-tuning.
  struct Norm {
    const T *w = nullptr, *b = nullptr;
    T *dw = nullptr, *db = nullptr;
  };
  struct Layer {
    Norm ln1, ln2;
    ColumnParallelLinear<T> qkv, fc1;  // fc1: GPT's fc, or Llama's fused gate|up
    RowParallelLinear<T> proj, fc2;    // fc2: GPT's proj, or Llama's down
    BlockActivations* act = nullptr;
  };

  ComputeBuffer<T> buffer(size_t n) { return ComputeBuffer<T>(*ops_.memory, n); }
  template <typename E>
  E* backend_copy(std::vector<E>& host, ComputeBuffer<E>& copy);  // host.data() on the CPU
  // The backend's view of a tensor, its weight view, its gradient (full fine-tuning, else null).
  T* backend_tensor(const std::string& name);
  WeightView<T> backend_weight(const std::string& name);
  WeightView<T> bf16_view(const uint16_t* p) const;
  T* backend_grad(const std::string& name);
  // Token ids for the ops: the caller's array on the CPU, uploaded into `copy` on another.
  const int32_t* backend_tokens(const int32_t* host, ComputeBuffer<int32_t>& copy, size_t n);
  void build_layers();
  Norm norm_params(const std::string& name);  // "h.3.ln_1", "ln_f"
  template <typename Linear>
  void point_linear(Linear& lin, const std::string& name, bool has_bias, int K, int N);  // "h.3.attn.qkv"
  // The spec's norm, its MLP activation, and RoPE on the q and k heads of a qkv output.
  void norm_forward(T* out, T* mean, T* rstd, const T* x, const Norm& n, int M);
  void norm_backward(T* dx, const T* dout, const T* x, const T* mean, const T* rstd, const Norm& n, int M);
  void mlp_activation_forward(T* g, const T* h, int M);
  void mlp_activation_backward(T* dh, const T* dg, const T* h, int M);
  void rope(T* qkv, int rows, int Tn, int pos0, bool backward);
  void attach_lora(int l, int target, int out_col, std::vector<LoraAdapter<T>>& into);
  void point_lora_buffers();
  // One block's forward from resid_[l]; out = resid_[l + 1], or nullptr for a recompute,
  // which stops after the MLP's GELU and fc2's LoRA u (the backward needs no more of fc2).
  // With a KV cache (one sequence) the new k, v rows are appended and attention reads the
  // cache; cache->length is advanced by the caller once every layer has run.
  void block_forward(int l, const MicroBatch& mb, const DropoutContext& ctx, T* out, KvCache<T>* cache = nullptr);
  void forward_blocks(const MicroBatch& mb, const DropoutContext& ctx, KvCache<T>* cache = nullptr);
  double lm_head_loss(const MicroBatch& mb, double loss_tokens, bool grad);
  // The CPU backend's LM head + cross-entropy, fused in L2-sized tiles (no chunk x V/tp logits),
  // only on the rows whose loss mask is not 0 (model/ops/cpu/fused_lm_head.h).
  double lm_head_loss_fused(const MicroBatch& mb, double loss_tokens, bool grad);
  bool fused_lm_head() const;
  void backward_blocks(const MicroBatch& mb, const DropoutContext& ctx);

  ModelConfig mc_;
  LoraConfig lc_;
  Communicator& comm_;
  const ComputeOps<T>& ops_;
  ArchSpec arch_;
  TpDims dims_;
  std::string head_;  // the LM head's tensor: "wte" (tied) or "lm_head"
  int max_M_;
  bool recompute_;
  bool full_;
  ParamLayout base_layout_;
  LoraLayout lora_layout_;
  DType dtype_;
  std::vector<T> base_, lora_, lora_grad_, base_grad_;
  std::vector<uint16_t> base_bf16_;
  std::vector<uint8_t> base_nf4_;
  Nf4Staging nf4_staging_;
  BackendParams cp_;
  std::vector<Layer> layers_;
  std::vector<BlockActivations> acts_;  // n_layer, or 1 with recompute
  ComputeBuffer<T> lora_du_, lora_dx_drop_;  // LoRA backward scratch, shared by all adapters
  // Residual stream at each block's input (n_layer + 1 entries), final LN, scratch.
  std::vector<ComputeBuffer<T>> resid_;
  Norm lnf_params_;
  ComputeBuffer<T> lnf_, lnf_mean_, lnf_rstd_, dlnf_, dres_, dln_, dqkv_, datt_, dh_, dg_, y_, logits_chunk_;
  ComputeBuffer<T> rope_cos_, rope_sin_;  // RoPE tables [context x head_dim/2], with rotary positions
  ComputeBuffer<T> ce_max_, ce_stats_, ce_weight_;
  ComputeBuffer<T> lm_tile_;             // fused LM head (CPU): one [rows x vocabulary columns] tile
  std::vector<int> lm_rows_;             // fused LM head: the rows whose loss mask is not 0
  std::vector<int32_t> lm_targets_;      // ... their targets minus the shard's first vocabulary id
  bool unfused_lm_head_ = false;         // use_unfused_lm_head()
  LmTileShape lm_shape_{};               // the fused tile's rows and vocabulary columns
  std::vector<T> ce_host_max_, ce_host_stats_, ce_host_weight_;  // the loss is summed on the host
  ComputeBuffer<int32_t> inputs_copy_, targets_copy_;  // the micro-batch's tokens off the CPU
  OpTimers timers_;
};

}  // namespace lora
