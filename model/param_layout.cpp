#include "model/param_layout.h"

#include <algorithm>
#include <stdexcept>

namespace lora {

int TensorSpec::global_row(int lr, int tp_rank) const {
  switch (shard) {
    case Shard::Rows: return tp_rank * local_rows + lr;
    case Shard::BlockRows: {
      int first = 0;  // the block's first full row
      for (size_t b = 0; b < blocks.size(); ++b) {
        const int local = local_block_rows(b);
        if (lr < local) return first + tp_rank * local + lr;
        lr -= local;
        first += blocks[b];
      }
      return rows;  // past the last block: none (BlockRows has no padding)
    }
    default: return lr;
  }
}

int TensorSpec::global_col(int lc, int tp_rank) const {
  return shard == Shard::Cols ? tp_rank * local_cols + lc : lc;
}

TensorSpec& ParamLayout::add(std::string name, int rows, int cols, Shard shard, int tp, DType dtype, TensorRole role,
                             std::vector<int> quant_segments) {
  TensorSpec s;
  s.name = std::move(name);
  s.rows = rows;
  s.cols = cols;
  s.shard = shard;
  s.local_rows = (shard == Shard::Rows || shard == Shard::BlockRows) ? (rows + tp - 1) / tp : rows;
  s.local_cols = shard == Shard::Cols ? cols / tp : cols;
  s.dtype = dtype;
  s.role = role;
  if (dtype == DType::NF4) {  // bytes, each shard on a cache line
    s.quant_segments = std::move(quant_segments);
    s.nf4 = nf4_shard_layout(s);
    s.offset = total_nf4;
    total_nf4 += s.nf4.bytes;
  } else {
    size_t& end = dtype == DType::BF16 ? total_bf16 : total;
    s.offset = end;
    end += s.local_size();
  }
  tensors.push_back(s);
  return tensors.back();
}

TensorSpec& ParamLayout::add_blocks(std::string name, std::vector<int> blocks, int cols, int tp, DType dtype,
                                    TensorRole role, bool separate) {
  int rows = 0;
  for (const int b : blocks) {
    if (b % tp) throw std::logic_error(name + ": a block of " + std::to_string(b) + " rows does not split over tp=" + std::to_string(tp));
    rows += b;
  }
  if (blocks.size() == 1) return add(std::move(name), rows, cols, Shard::Rows, tp, dtype, role);
  // The NF4 layout reads the blocks (global_row), so it is made once they are set.
  TensorSpec& s = add(std::move(name), rows, cols, Shard::BlockRows, tp, DType::F32, role);
  s.blocks = blocks;
  if (dtype == DType::F32) return s;
  total -= s.local_size();  // moved to its own buffer
  s.dtype = dtype;
  if (dtype == DType::BF16) {
    s.offset = total_bf16;
    total_bf16 += s.local_size();
  } else {
    if (separate) s.quant_segments = std::move(blocks);
    s.nf4 = nf4_shard_layout(s);
    s.offset = total_nf4;
    total_nf4 += s.nf4.bytes;
  }
  return s;
}

const TensorSpec* ParamLayout::find(const std::string& name) const {
  for (const auto& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

const TensorSpec& ParamLayout::at(const std::string& name) const {
  if (const TensorSpec* t = find(name)) return *t;
  throw std::runtime_error("no tensor named '" + name + "' in the parameter layout");
}

TpDims::TpDims(const ArchSpec& a, int tp_, int tp_rank_)
    : tp(tp_), tp_rank(tp_rank_), d(a.d_model), heads(a.n_head), kv_heads(a.n_kv_head), head_dim(a.head_dim),
      local_heads(a.n_head / tp_), local_kv_heads(a.n_kv_head / tp_), ql(local_heads * head_dim),
      kvl(local_kv_heads * head_dim), ffl(a.ffn / tp_), vocab(a.vocab), vocab_local((a.vocab + tp_ - 1) / tp_),
      vocab_start(tp_rank_ * ((a.vocab + tp_ - 1) / tp_)) {
  check_tp_split(a, tp);
}

// One architecture's tensors, in the order their seeded init numbers them (GPT's as it has
// always been: existing runs reproduce).
ParamLayout base_layout(const ModelConfig& m, int tp) {
  const ArchSpec a = arch_spec(m);
  const int d = a.d_model;
  const DType dtype = parse_dtype(m.dtype);
  const DType block_mat = dtype;                                // the blocks' matrices
  const DType mat = dtype == DType::NF4 ? DType::BF16 : dtype;  // embeddings and head: bf16 under nf4
  const DType vec = DType::F32;                                 // vectors stay in the model's type
  const bool separate = a.separate_projections;                 // NF4: q, k, v (gate, up) quantized apart
  const bool layer_norm = a.norm == NormKind::LayerNorm;
  ParamLayout p;
  p.add("wte", a.vocab, d, Shard::Rows, tp, mat, TensorRole::Embedding);  // vocab-parallel
  if (a.position == PositionKind::Learned) p.add("wpe", a.context, d, Shard::Replicated, tp, mat, TensorRole::Positions);
  const auto norm = [&](const std::string& name) {
    p.add(name + ".weight", 1, d, Shard::Replicated, tp, vec, TensorRole::NormGain);
    if (layer_norm) p.add(name + ".bias", 1, d, Shard::Replicated, tp, vec, TensorRole::NormBias);
  };
  const std::vector<int> qkv_blocks = {a.q_width(), a.kv_width(), a.kv_width()};
  const std::vector<int> mlp_blocks = a.mlp == MlpKind::SwiGlu ? std::vector<int>{a.ffn, a.ffn} : std::vector<int>{a.ffn};
  for (int l = 0; l < a.n_layer; ++l) {
    const std::string h = "h." + std::to_string(l) + ".";
    norm(h + "ln_1");
    p.add_blocks(h + "attn.qkv.weight", qkv_blocks, d, tp, block_mat, TensorRole::Weight, separate);  // column-parallel
    if (a.qkv_bias) p.add_blocks(h + "attn.qkv.bias", qkv_blocks, 1, tp, vec, TensorRole::Bias);
    p.add(h + "attn.proj.weight", d, a.q_width(), Shard::Cols, tp, block_mat, TensorRole::ResidualWeight);  // row-parallel
    if (a.o_bias) p.add(h + "attn.proj.bias", 1, d, Shard::Replicated, tp, vec, TensorRole::Bias);  // added after the all-reduce
    norm(h + "ln_2");
    p.add_blocks(h + "mlp.fc.weight", mlp_blocks, d, tp, block_mat, TensorRole::Weight, separate);  // fc, or gate|up
    if (a.mlp_bias) p.add_blocks(h + "mlp.fc.bias", mlp_blocks, 1, tp, vec, TensorRole::Bias);
    p.add(h + "mlp.proj.weight", d, a.ffn, Shard::Cols, tp, block_mat, TensorRole::ResidualWeight);  // fc2, or down
    if (a.mlp_bias) p.add(h + "mlp.proj.bias", 1, d, Shard::Replicated, tp, vec, TensorRole::Bias);
  }
  norm("ln_f");
  if (!a.tied_head) p.add("lm_head", a.vocab, d, Shard::Rows, tp, mat, TensorRole::Head);  // sharded like wte
  return p;
}

std::string lora_pair_name(int layer, int target) {
  return "h." + std::to_string(layer) + ".lora." + lora_target_name(target) + ".";
}

uint32_t lora_stream(const ArchSpec& a, int layer, int target) {
  const auto at = std::find(a.lora_targets.begin(), a.lora_targets.end(), target);
  if (at == a.lora_targets.end())
    throw std::logic_error(std::string("lora_stream: the ") + a.family + " architecture has no LoRA target " + lora_target_name(target));
  return static_cast<uint32_t>(layer * a.lora_targets.size() + (at - a.lora_targets.begin()));
}

LoraBaseWeight lora_base_weight(const ArchSpec& a, int target) {
  switch (target) {
    case kQ: return {"attn.qkv.weight", 0};
    case kK: return {"attn.qkv.weight", a.q_width()};
    case kV: return {"attn.qkv.weight", a.q_width() + a.kv_width()};
    case kO: return {"attn.proj.weight", 0};
    case kFc1:
    case kGate: return {"mlp.fc.weight", 0};
    case kUp: return {"mlp.fc.weight", a.ffn};
    default: return {"mlp.proj.weight", 0};  // fc2, down
  }
}

LoraLayout lora_layout(const ModelConfig& m, const LoraConfig& lc, int tp) {
  LoraLayout p;
  if (!lc.enabled) return p;  // full fine-tuning: no adapter
  const ArchSpec a = arch_spec(m);
  for (int pass = 0; pass < 2; ++pass) {  // pass 0: replicated factors; pass 1: sharded ones
    if (pass == 1) p.replicated_size = p.total;
    for (int l = 0; l < a.n_layer; ++l)
      for (const int t : a.lora_targets) {
        if (!lc.targets[t]) continue;
        int out = 0, in = 0;
        lora_target_shape(a, t, &out, &in);
        const std::string name = lora_pair_name(l, t);
        const bool row = is_row_parallel(t);
        // Column-parallel base: A replicated, B row-sharded. Row-parallel: A column-sharded, B replicated.
        if (pass == 0 && !row) p.add(name + "A", lc.r, in, Shard::Replicated, tp);
        if (pass == 0 && row) p.add(name + "B", out, lc.r, Shard::Replicated, tp);
        if (pass == 1 && !row) p.add(name + "B", out, lc.r, Shard::Rows, tp);
        if (pass == 1 && row) p.add(name + "A", lc.r, in, Shard::Cols, tp);
      }
  }
  return p;
}

}  // namespace lora
