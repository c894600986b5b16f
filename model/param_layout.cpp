#include "model/param_layout.h"

#include <stdexcept>

namespace lora {

int TensorSpec::global_row(int lr, int tp_rank) const {
  switch (shard) {
    case Shard::Rows: return tp_rank * local_rows + lr;
    case Shard::QkvRows: {
      const int block = local_rows / 3;  // this rank's rows in each of q, k, v
      return (lr / block) * (rows / 3) + tp_rank * block + lr % block;
    }
    default: return lr;
  }
}

int TensorSpec::global_col(int lc, int tp_rank) const {
  return shard == Shard::Cols ? tp_rank * local_cols + lc : lc;
}

TensorSpec& ParamLayout::add(std::string name, int rows, int cols, Shard shard, int tp, DType dtype) {
  TensorSpec s;
  s.name = std::move(name);
  s.rows = rows;
  s.cols = cols;
  s.shard = shard;
  s.local_rows = (shard == Shard::Rows || shard == Shard::QkvRows) ? (rows + tp - 1) / tp : rows;
  s.local_cols = shard == Shard::Cols ? cols / tp : cols;
  s.dtype = dtype;
  size_t& end = dtype == DType::BF16 ? total_bf16 : total;
  s.offset = end;
  end += s.local_size();
  tensors.push_back(s);
  return tensors.back();
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

TpDims::TpDims(const ModelConfig& m, int tp_, int tp_rank_)
    : tp(tp_), tp_rank(tp_rank_), d(m.d_model), heads(m.n_head), head_dim(m.d_model / m.n_head),
      local_heads(m.n_head / tp_), dl(m.d_model / tp_), ffl(4 * m.d_model / tp_), vocab(m.vocab_size),
      vocab_local((m.vocab_size + tp_ - 1) / tp_), vocab_start(tp_rank_ * ((m.vocab_size + tp_ - 1) / tp_)) {
  if (m.n_head % tp || (4 * m.d_model) % tp)
    throw std::runtime_error("tp=" + std::to_string(tp) + " must divide n_head=" + std::to_string(m.n_head) +
                             " and 4*d_model=" + std::to_string(4 * m.d_model));
}

ParamLayout base_layout(const ModelConfig& m, int tp) {
  const int d = m.d_model;
  const DType mat = parse_dtype(m.dtype);  // the matrices' type; vectors stay in the model's
  ParamLayout p;
  p.add("wte", m.vocab_size, d, Shard::Rows, tp, mat);  // vocab-parallel, tied with the LM head
  p.add("wpe", m.context, d, Shard::Replicated, tp, mat);
  for (int l = 0; l < m.n_layer; ++l) {
    const std::string h = "h." + std::to_string(l) + ".";
    p.add(h + "ln_1.weight", 1, d, Shard::Replicated, tp);
    p.add(h + "ln_1.bias", 1, d, Shard::Replicated, tp);
    p.add(h + "attn.qkv.weight", 3 * d, d, Shard::QkvRows, tp, mat);
    p.add(h + "attn.qkv.bias", 3 * d, 1, Shard::QkvRows, tp);
    p.add(h + "attn.proj.weight", d, d, Shard::Cols, tp, mat);
    p.add(h + "attn.proj.bias", 1, d, Shard::Replicated, tp);  // added once, after the all-reduce
    p.add(h + "ln_2.weight", 1, d, Shard::Replicated, tp);
    p.add(h + "ln_2.bias", 1, d, Shard::Replicated, tp);
    p.add(h + "mlp.fc.weight", 4 * d, d, Shard::Rows, tp, mat);
    p.add(h + "mlp.fc.bias", 4 * d, 1, Shard::Rows, tp);
    p.add(h + "mlp.proj.weight", d, 4 * d, Shard::Cols, tp, mat);
    p.add(h + "mlp.proj.bias", 1, d, Shard::Replicated, tp);
  }
  p.add("ln_f.weight", 1, d, Shard::Replicated, tp);
  p.add("ln_f.bias", 1, d, Shard::Replicated, tp);
  return p;
}

std::string lora_pair_name(int layer, int target) {
  return "h." + std::to_string(layer) + ".lora." + lora_target_name(target) + ".";
}

bool is_row_parallel(int target) { return target == kO || target == kFc2; }

void lora_target_shape(const ModelConfig& m, int target, int* out, int* in) {
  const int d = m.d_model;
  *out = target == kFc1 ? 4 * d : d;
  *in = target == kFc2 ? 4 * d : d;
}

LoraLayout lora_layout(const ModelConfig& m, const LoraConfig& lc, int tp) {
  LoraLayout p;
  if (!lc.enabled) return p;  // full fine-tuning: no adapter
  for (int pass = 0; pass < 2; ++pass) {  // pass 0: replicated factors; pass 1: sharded ones
    if (pass == 1) p.replicated_size = p.total;
    for (int l = 0; l < m.n_layer; ++l)
      for (int t = 0; t < kNumTargets; ++t) {
        if (!lc.targets[t]) continue;
        int out = 0, in = 0;
        lora_target_shape(m, t, &out, &in);
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
