#include "model/arch.h"

#include <algorithm>
#include <climits>
#include <stdexcept>

namespace lora {

namespace {
// The sizes both families share, with the Llama family's derived defaults.
ArchSpec common(const ModelConfig& m) {
  ArchSpec a;
  a.n_layer = m.n_layer;
  a.d_model = m.d_model;
  a.vocab = m.vocab_size;
  a.context = m.context;
  a.n_head = m.n_head;
  a.n_kv_head = m.n_kv_head > 0 ? m.n_kv_head : m.n_head;
  a.head_dim = m.head_dim > 0 ? m.head_dim : m.d_model / std::max(1, m.n_head);
  // Saturated rather than overflowed: the config check refuses a width past 32 bits by name.
  a.ffn = m.ffn > 0 ? m.ffn : static_cast<int>(std::min<long long>(4LL * m.d_model, INT_MAX));
  a.norm_eps = m.ln_eps;
  return a;
}
}  // namespace

ArchSpec gpt_spec(const ModelConfig& m) {
  ArchSpec a = common(m);
  a.family = "gpt";
  a.norm = NormKind::LayerNorm;
  a.position = PositionKind::Learned;
  a.mlp = MlpKind::Gelu;
  a.norm_bias = a.qkv_bias = a.o_bias = a.mlp_bias = true;
  a.tied_head = true;
  a.separate_projections = false;  // c_attn holds q, k and v
  a.lora_targets = {kQ, kK, kV, kO, kFc1, kFc2};
  return a;
}

ArchSpec llama_spec(const ModelConfig& m) {
  ArchSpec a = common(m);
  a.family = "llama";
  a.norm = NormKind::RMSNorm;
  a.position = PositionKind::Rotary;
  a.mlp = MlpKind::SwiGlu;
  a.rope_theta = m.rope_theta;
  a.rope_scaling = m.rope_scaling;
  a.norm_bias = false;
  a.qkv_bias = m.qkv_bias;
  a.o_bias = m.o_bias;
  a.mlp_bias = m.mlp_bias;
  a.tied_head = m.tie_embeddings;
  a.separate_projections = true;  // q_proj, k_proj, v_proj; gate_proj, up_proj
  a.lora_targets = {kQ, kK, kV, kO, kGate, kUp, kDown};
  return a;
}

ArchSpec arch_spec(const ModelConfig& m) {
  if (m.arch == "gpt") return gpt_spec(m);
  if (m.arch == "llama") return llama_spec(m);
  throw std::invalid_argument("model.arch '" + m.arch + "' is not one of gpt, llama");
}

std::string describe(const ArchSpec& a) {
  std::string s = (a.family == "gpt" ? "GPT L" : "Llama L") + std::to_string(a.n_layer) + " d" + std::to_string(a.d_model) +
                  " H" + std::to_string(a.n_head);
  if (a.family != "gpt")
    s += "/KV" + std::to_string(a.n_kv_head) + " hd" + std::to_string(a.head_dim) + " ffn" + std::to_string(a.ffn);
  s += " V" + std::to_string(a.vocab);
  if (a.family != "gpt") s += a.tied_head ? " tied" : " untied";
  return s;
}

bool ArchSpec::has_target(int t) const { return std::find(lora_targets.begin(), lora_targets.end(), t) != lora_targets.end(); }

void check_tp_split(const ArchSpec& a, int tp) {
  const auto fail = [&](const std::string& what, long long n) {
    throw std::runtime_error("tp=" + std::to_string(tp) + " must divide " + what + "=" + std::to_string(n) +
                             " (the largest tp that splits this model is " + std::to_string(largest_tp(a)) + ")");
  };
  if (a.n_head % tp) fail("n_head", a.n_head);
  // KV heads are split by whole groups: a rank's query heads read only its own KV heads.
  if (a.n_kv_head % tp) fail("n_kv_head", a.n_kv_head);
  if (a.ffn % tp) fail(a.family == "gpt" ? "4*d_model" : "ffn", a.ffn);
}

int largest_tp(const ArchSpec& a) {
  int tp = 1;
  while (a.n_head % (2 * tp) == 0 && a.n_kv_head % (2 * tp) == 0 && a.ffn % (2 * tp) == 0) tp *= 2;
  return tp;
}

bool is_row_parallel(int target) { return target == kO || target == kFc2 || target == kDown; }

void lora_target_shape(const ArchSpec& a, int target, int* out, int* in) {
  switch (target) {
    case kQ: *out = a.q_width(), *in = a.d_model; return;
    case kK:
    case kV: *out = a.kv_width(), *in = a.d_model; return;
    case kO: *out = a.d_model, *in = a.q_width(); return;
    case kFc1:
    case kGate:
    case kUp: *out = a.ffn, *in = a.d_model; return;
    default: *out = a.d_model, *in = a.ffn; return;  // fc2, down
  }
}

double matmul_weights(const ArchSpec& a) {
  const double d = a.d_model;
  const double per_layer = d * a.qkv_width() + double(a.q_width()) * d + d * a.mlp_up_width() + double(a.ffn) * d;
  return a.n_layer * per_layer + double(a.vocab) * d;
}

double lora_weights(const ArchSpec& a, const LoraConfig& l, bool recomputed_only) {
  double n = 0;
  for (const int t : a.lora_targets) {
    if (!l.targets[t] || (recomputed_only && is_row_parallel(t) && t != kO)) continue;
    int out = 0, in = 0;
    lora_target_shape(a, t, &out, &in);
    n += double(a.n_layer) * l.r * (in + out);
  }
  return n;
}

double attention_flops_per_token(const ArchSpec& a, int seq_len) { return 4.0 * a.n_layer * seq_len * a.q_width(); }

}  // namespace lora
