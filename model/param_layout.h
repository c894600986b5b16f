// Where every tensor lives in a rank's flat buffer, and which slice of the full tensor
// that rank holds (DESIGN §3, §4). One buffer holds all base weights, one all LoRA
// parameters (llm.c style); a TensorSpec names a piece of it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "model/arch.h"
#include "model/config.h"
#include "model/dtype.h"
#include "model/nf4_weight.h"

namespace lora {

// How a tensor of the full model is cut over the TP ranks.
enum class Shard {
  Replicated,  // every TP rank holds all of it
  Rows,        // rank i holds rows [i*local_rows, (i+1)*local_rows); rows >= `rows` are padding
  Cols,        // rank i holds columns [i*local_cols, (i+1)*local_cols)
  BlockRows,   // fused row blocks (q; k; v, or gate; up): rank i holds its 1/tp of every block
};

// What a tensor is to the model, for its initialisation and for readers that map names.
enum class TensorRole {
  Embedding,       // the token table (and, tied, the LM head)
  Positions,       // the learned position table
  NormGain,        // a LayerNorm/RMSNorm weight (initialised to 1)
  NormBias,        // a LayerNorm bias
  Weight,          // a linear layer's weight
  ResidualWeight,  // a linear weight whose output enters the residual stream (GPT-2 scales its init)
  Bias,            // a linear layer's bias
  Head,            // an untied LM head
};

struct TensorSpec {
  std::string name;          // as in files: "h.3.attn.qkv.weight", "h.3.lora.q.A"
  int rows = 1, cols = 1;    // full, unsharded shape
  int local_rows = 1, local_cols = 1;
  Shard shard = Shard::Replicated;
  std::vector<int> blocks;   // BlockRows: the full rows of each block ({q, kv, kv} or {ffn, ffn})
  TensorRole role = TensorRole::Weight;
  size_t offset = 0;         // first element (NF4: byte) in the rank's buffer of its dtype
  DType dtype = DType::F32;  // F32: the model's own type, in the main buffer; BF16: in the bf16
                             // buffer; NF4: its shard's bytes in the NF4 buffer
  // NF4: the full rows of each matrix quantized on its own (Llama's q, k, v; gate, up), as a
  // checkpoint stores them; empty: the whole tensor is one. `nf4` locates the shard's parts.
  std::vector<int> quant_segments;
  Nf4ShardLayout nf4;

  size_t local_size() const { return static_cast<size_t>(local_rows) * local_cols; }
  // BlockRows: this rank's rows of block b (blocks[b] / tp).
  int local_block_rows(size_t b) const { return static_cast<int>(static_cast<long long>(blocks[b]) * local_rows / rows); }
  // Full-tensor row of local row lr on TP rank `tp_rank`; may be >= rows (padding).
  int global_row(int lr, int tp_rank) const;
  int global_col(int lc, int tp_rank) const;

  // Calls f(local_row, global_row, n) for each run of n local rows in [lr0, lr1) of TP rank
  // `tp_rank` whose full-tensor rows follow each other (one run for Rows/Cols/Replicated, one
  // per block for BlockRows); padding rows are left out. Readers and writers of full
  // tensors move each run as one hyperslab.
  template <typename F>
  void for_each_row_run(int tp_rank, int lr0, int lr1, F f) const {
    for (int lr = lr0; lr < lr1;) {
      const int row0 = global_row(lr, tp_rank);
      if (row0 >= rows) break;  // padding rows come last
      int n = 1;
      while (lr + n < lr1 && global_row(lr + n, tp_rank) == row0 + n && row0 + n < rows) ++n;
      f(lr, row0, n);
      lr += n;
    }
  }
};

struct ParamLayout {
  std::vector<TensorSpec> tensors;
  size_t total = 0;       // elements in the main (model-type) buffer
  size_t total_bf16 = 0;  // elements in the bf16 buffer (model.dtype bf16: the 2-D matrices)
  size_t total_nf4 = 0;   // bytes of the NF4 buffer (model.dtype nf4: the blocks' matrices)

  TensorSpec& add(std::string name, int rows, int cols, Shard shard, int tp, DType dtype = DType::F32,
                  TensorRole role = TensorRole::Weight, std::vector<int> quant_segments = {});
  // A BlockRows tensor of the blocks' rows stacked (one block: plain Rows); each block's rows
  // must divide by tp. NF4 with `separate`: each block is quantized on its own.
  TensorSpec& add_blocks(std::string name, std::vector<int> blocks, int cols, int tp, DType dtype, TensorRole role,
                         bool separate = false);
  // Bytes of this rank's frozen tensors with `elem_bytes` per model-type element.
  size_t bytes(size_t elem_bytes) const { return total * elem_bytes + total_bf16 * 2 + total_nf4; }
  const TensorSpec& at(const std::string& name) const;  // throws naming the tensor
  const TensorSpec* find(const std::string& name) const;
};

// Per-rank sizes of the sharded model (DESIGN §3). V is padded to a multiple of tp.
struct TpDims {
  int tp = 1, tp_rank = 0;
  int d = 0, heads = 0, kv_heads = 0, head_dim = 0, local_heads = 0, local_kv_heads = 0;
  int ql = 0;       // this rank's q features (and attention output): local_heads * head_dim
  int kvl = 0;      // this rank's k features, and v's: local_kv_heads * head_dim
  int ffl = 0;      // this rank's MLP inner width, ffn / tp
  int vocab = 0, vocab_local = 0, vocab_start = 0;
  int qkv_local() const { return ql + 2 * kvl; }  // a row of the fused qkv output: [q | k | v]
  // Throws (check_tp_split) when tp cannot split the spec.
  TpDims(const ArchSpec& a, int tp, int tp_rank);
};

// The frozen base: names follow GPT-2's for both families (io/ maps Hugging Face's), weights
// stored [out x in]. The spec decides which exist: wpe only with learned positions, norm
// biases only with LayerNorm, linear biases where the spec has them, lm_head only when
// untied. With model.dtype bf16 the 2-D matrices are BF16 tensors in their own buffer; norm
// parameters and biases stay in the model's type. With nf4 the blocks' matrices are NF4 (each
// of Llama's q, k, v, gate and up quantized on its own, as in its checkpoints; GPT-2's fused
// c_attn whole) and the embeddings and untied head bf16.
ParamLayout base_layout(const ModelConfig& m, int tp);

// LoRA pairs for layer l and target t are "h.{l}.lora.{q|k|v|o|fc1|fc2|gate|up|down}.{A|B}".
// Replicated-over-TP factors (A of column-parallel layers, B of row-parallel ones) come
// first, then the TP-sharded ones, so each kind is one contiguous slice for its
// all-reduce (DESIGN §4). `replicated_size` is where the sharded part starts.
struct LoraLayout : ParamLayout {
  size_t replicated_size = 0;
};
LoraLayout lora_layout(const ModelConfig& m, const LoraConfig& lc, int tp);

// "h.{layer}.lora.{target}.": the prefix of a LoRA pair's "A" and "B" tensor names.
std::string lora_pair_name(int layer, int target);
// The pair's Philox stream, shared by its A init and its dropout masks (DESIGN §5): the
// target's place in the architecture's list, layer after layer (GPT: layer * 6 + target).
uint32_t lora_stream(const ArchSpec& a, int layer, int target);

// The base weight target t's pair adds to: the tensor "h.{layer}.{tensor}" and the first of
// its full rows (q, k and v are row blocks of attn.qkv.weight; gate and up of mlp.fc.weight).
struct LoraBaseWeight {
  const char* tensor;
  int first_row;
};
LoraBaseWeight lora_base_weight(const ArchSpec& a, int target);

}  // namespace lora
