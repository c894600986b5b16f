#include "trainer/plan/plan.h"

#include <algorithm>
#include <cstring>
#include <fstream>

#include "model/memory_estimate.h"
#include "model/ops/attention.h"
#include "model/ops/cpu/fused_lm_head.h"
#include "model/ops/linear.h"
#include "model/param_layout.h"

namespace lora {

namespace {

constexpr uint64_t kF32 = 4;
constexpr uint64_t kLmHeadChunkRows = 1024;  // model/gpt.cpp kLmHeadChunk

bool is_bf16(const ModelConfig& m) { return m.dtype == "bf16"; }
bool is_nf4(const ModelConfig& m) { return m.dtype == "nf4"; }

// A 64-byte token-shard header (io/token_shard.h): bytes in memory once read, plus the
// shuffled window order when `shuffled`. 0 when the file cannot be read.
uint64_t shard_bytes(const std::string& path, int seq_len, bool shuffled) {
  if (path.empty()) return 0;
  std::ifstream in(path, std::ios::binary);
  unsigned char h[64];
  if (!in.read(reinterpret_cast<char*>(h), sizeof h)) return 0;
  uint32_t flags = 0;
  uint64_t n = 0;
  std::memcpy(&flags, h + 20, 4);
  std::memcpy(&n, h + 24, 8);
  const uint64_t windows = n > 1 ? (n - 1) / uint64_t(seq_len) : 0;
  return n * (4 + ((flags & 1) ? 1 : 0)) + (shuffled ? 4 * windows : 0);
}

// The largest staging copy a bf16 frozen-weight GEMM keeps (model/ops/cpu/frozen_gemm.cpp),
// in bytes, over every GEMM of a step: forward y = x W^T with W [N x K], backward dx = dy W.
// model.dtype nf4: on a CPU every frozen GEMM widens a block of rows to fp32 (NF4 dequantized,
// the bf16 embeddings widened) with no input copy; on a GPU an NF4 block of rows is dequantized
// to bf16 and the input copied to bf16, as for a bf16 weight, plus that bf16 block.
uint64_t bf16_staging_bytes(const ModelConfig& m, int tp, uint64_t M, DeviceSpec::Bf16Staging kind, bool is_cpu) {
  if (is_nf4(m)) kind = is_cpu ? DeviceSpec::Bf16Staging::WidenedBlocks : DeviceSpec::Bf16Staging::Bf16InputCopy;
  if (kind == DeviceSpec::Bf16Staging::None || !(is_bf16(m) || is_nf4(m))) return 0;
  const ArchSpec a = arch_spec(m);
  const uint64_t d = a.d_model, ql = uint64_t(a.q_width()) / tp, qkvl = uint64_t(a.qkv_width()) / tp;
  const uint64_t upl = uint64_t(a.mlp_up_width()) / tp, ffl = uint64_t(a.ffn) / tp;
  const uint64_t vl = (uint64_t(a.vocab) + tp - 1) / tp;
  struct Gemm { uint64_t rows, N, K; bool rounds_dy; };
  // The LM head's GEMMs: a chunk of rows over the rank's vocabulary (CUDA), or a vocabulary
  // slice of one fused tile's width for a chunk of rows (the CPU backend, model/ops/cpu/
  // fused_lm_head.h: the chunk's rows rounded once, the slice widened once, its dX GEMM in fp32).
  const Gemm head = is_cpu ? Gemm{std::min(kLmHeadChunkRows, M), std::min<uint64_t>(kLmTileCols, vl), d, false}
                           : Gemm{std::min(kLmHeadChunkRows, M), vl, d, true};
  const Gemm gemms[] = {{M, qkvl, d, true}, {M, d, ql, true}, {M, upl, d, true}, {M, d, ffl, true}, head};
  uint64_t input = 0, widened = 0;
  for (const Gemm& g : gemms) {
    const uint64_t block = std::min<uint64_t>(g.N, frozen_gemm_block_rows(static_cast<int>(g.K)));
    if (kind == DeviceSpec::Bf16Staging::Bf16InputCopy) {  // a bf16 copy of x (forward) or dy (backward)
      input = std::max({input, 2 * g.rows * g.K, 2 * g.rows * g.N});
      if (is_nf4(m)) widened = std::max(widened, 2 * block * g.K);  // the dequantized bf16 block
      continue;
    }
    // Widened: W in blocks of max(64, 4 Mi / K) rows; the fp32 rounded input (bf16 only) is x
    // [rows x K] forward, and one block's columns of dy [rows x block] backward.
    if (!is_nf4(m)) input = std::max({input, kF32 * g.rows * g.K, g.rounds_dy ? kF32 * g.rows * block : 0});
    widened = std::max(widened, kF32 * block * g.K);
  }
  return input + widened;
}

// What quantizing at load holds besides the model (model/nf4_weight.h's two phases): the fp32
// absmax of every local block until finish_nf4, plus the larger of one matrix's local rows in
// fp32 (phase 1) and one matrix's gathered absmax with its whole-tensor codes (phase 2). The
// model's buffers are all allocated before the load, so these add to them. Host memory: a GPU's
// plan leaves it out.
uint64_t nf4_load_bytes(const ModelConfig& m, int tp) {
  if (!is_nf4(m)) return 0;
  uint64_t absmax = 0, largest = 0;
  for (const TensorSpec& s : base_layout(m, tp).tensors) {
    if (s.dtype != DType::NF4) continue;
    const uint64_t local_blocks = uint64_t(s.local_size()) / kNf4Blocksize;
    const uint64_t whole_blocks = uint64_t(s.rows) * uint64_t(s.cols) / kNf4Blocksize;
    absmax += kF32 * local_blocks;
    largest = std::max({largest, kF32 * uint64_t(s.local_size()), kF32 * local_blocks * tp + 5 * whole_blocks});
  }
  return absmax + largest;
}

// One all-reduce's time in a ring of g ranks: each rank sends and receives 2(g-1)/g of it.
double ring_seconds(uint64_t bytes, int g, double bytes_per_s) {
  if (g <= 1 || bytes == 0 || bytes_per_s <= 0) return 0;
  return 2.0 * (g - 1) / g * double(bytes) / bytes_per_s;
}

uint64_t memory_need(const PlanMemory& mem, const DeviceSpec& dev, int ranks) {
  return dev.is_cpu ? mem.peak() * uint64_t(ranks) : mem.peak();
}

// What lowers a memory term, for the verdict. `more_tp` is how to say "raise parallel.tp": at
// the largest tp the heads (Llama: the KV heads) split into, it is a larger device instead.
std::string advice_for(const std::string& term, const PlanMemory& mem, const std::string& dtype,
                       const std::string& more_tp) {
  if (term == "base weights")
    return dtype == "nf4" ? more_tp : dtype == "bf16" ? "set model.dtype=nf4, or " + more_tp
                                                      : "set model.dtype=bf16 (or nf4), or " + more_tp;
  if (term == "saved block activations")
    return mem.recompute ? "lower train.micro_batch or train.seq_len, or " + more_tp
                         : "set train.recompute=full, or lower train.micro_batch";
  if (term == "block inputs") return "lower train.micro_batch or train.seq_len";
  if (term == "gradients" || term == "AdamW m, v" || term == "trainable parameters")
    return more_tp + " (the optimizer state is sharded with the weights)";
  if (term == "activation gradients") return "lower train.micro_batch or train.seq_len, or " + more_tp;
  if (term == "token data") return "use a smaller token shard";
  return "fewer ranks per node";
}

PlanVerdict verdict(const PlanMemory& mem, const DeviceSpec& dev, int ranks, const std::string& dtype,
                    const std::string& more_tp) {
  PlanVerdict v;
  v.need = memory_need(mem, dev, ranks);
  v.have = dev.memory_bytes;
  v.fits = v.need <= v.have;
  std::vector<std::pair<uint64_t, std::string>> terms = {
      {mem.weights, "base weights"},
      {mem.trainable, "trainable parameters"},
      {mem.grads, "gradients"},
      {mem.adam, "AdamW m, v"},
      {mem.block_inputs, "block inputs"},
      {mem.saved_blocks[mem.recompute ? 1 : 0], "saved block activations"},
      {mem.activation_grads, "activation gradients"},
      {mem.runtime, "runtime"},
      {mem.data, "token data"},
  };
  std::stable_sort(terms.begin(), terms.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  v.largest_term = terms[0].second;
  v.advice = advice_for(v.largest_term, mem, dtype, more_tp);
  v.runner_up = terms[1].second;
  v.runner_up_advice = advice_for(v.runner_up, mem, dtype, more_tp);
  v.largest_bytes = terms[0].first;
  v.runner_up_bytes = terms[1].first;
  return v;
}

PlanTime step_time(const PlanFlops& f, double tp_bytes, uint64_t grads_world, uint64_t grads_dp, const RunConfig& cfg,
                   const DeviceSpec& dev) {
  const int tp = cfg.parallel.tp, dp = cfg.parallel.dp, world = tp * dp;
  PlanTime t;
  // NF4 computes in bf16 on a GPU (its blocks dequantized to bf16, as QLoRA) and in fp32 on a CPU.
  const bool bf16_compute = is_bf16(cfg.model) || (is_nf4(cfg.model) && !dev.is_cpu);
  t.peak_flops = bf16_compute ? dev.peak_flops_bf16 : dev.peak_flops_fp32;
  t.compute_s = t.peak_flops > 0 ? f.executed() / world / t.peak_flops : 0;
  // A group crosses nodes once it is wider than a node; TP groups are consecutive ranks.
  const double tp_bw = tp <= dev.devices_per_node ? dev.intra_node_bytes_per_s : dev.inter_node_bytes_per_s;
  const double world_bw = world <= dev.devices_per_node ? dev.intra_node_bytes_per_s : dev.inter_node_bytes_per_s;
  t.tp_comm_s = ring_seconds(uint64_t(tp_bytes), tp, tp_bw);
  t.grad_comm_s = ring_seconds(grads_world, world, world_bw) + ring_seconds(grads_dp, dp, world_bw);
  return t;
}

}  // namespace

uint64_t PlanMemory::peak() const {
  return weights + trainable + grads + adam + activations() + activation_grads + lm_head_chunk + lora_scratch +
         attention_blocks + gemm_staging + nf4_load + comm_buffers + runtime + data;
}

uint64_t token_data_bytes(const RunConfig& cfg) {
  return shard_bytes(cfg.data.train, cfg.train.seq_len, /*shuffled=*/true) +
         shard_bytes(cfg.data.val, cfg.train.seq_len, /*shuffled=*/false);
}

Plan make_plan(const RunConfig& cfg, const DeviceSpec& device, uint64_t data_bytes) {
  const ModelConfig& m = cfg.model;
  const ArchSpec arch = arch_spec(m);
  const TrainConfig& t = cfg.train;
  const int tp = cfg.parallel.tp, dp = cfg.parallel.dp;
  const bool recompute = t.recompute == "full";
  Plan p;
  p.cfg = cfg;
  p.device = device;
  p.ranks = tp * dp;
  p.micro_batches = t.batch_size / (dp * t.micro_batch);
  p.tokens_per_step = double(t.batch_size) * t.seq_len;
  const uint64_t M = uint64_t(t.micro_batch) * t.seq_len, d = m.d_model, L = m.n_layer;
  const uint64_t vocab_local = (uint64_t(m.vocab_size) + tp - 1) / tp;

  // --- memory: the model's buffers come from estimate_model_memory -----------------------
  LoraConfig no_lora = cfg.lora;
  std::fill(std::begin(no_lora.targets), std::end(no_lora.targets), false);
  auto estimate = [&](const ModelConfig& mc, const LoraConfig& lc, bool rc) {
    return estimate_model_memory(mc, lc, tp, t.micro_batch, t.seq_len, rc, 4, /*fused_lm_head=*/device.is_cpu);
  };
  // One block's saved activations: what a second layer adds without recompute.
  auto per_block = [&](const LoraConfig& lc) {
    ModelConfig two = m;
    two.n_layer = 2;
    return estimate(two, lc, false).activations - estimate(two, lc, true).activations;
  };
  const MemoryEstimate est = estimate(m, cfg.lora, recompute), bare = estimate(m, no_lora, false);
  const uint64_t lm_chunk = lm_head_scratch_bytes(M, vocab_local, /*fused=*/device.is_cpu);
  const int threads = device.is_cpu ? device.threads_per_rank : 0;
  // Blocked attention keeps, per thread, score and probability blocks of kAttentionBlock^2.
  const uint64_t att_blocks = uint64_t(threads) * kF32 * 3 * (kAttentionBlock * kAttentionBlock + kAttentionBlock);
  const uint64_t staging = bf16_staging_bytes(m, tp, M, device.bf16_staging, device.is_cpu);
  const uint64_t micro_batch_io = M * (4 + 4 + 4);  // inputs, targets (int32), loss mask (float)

  auto common = [&](PlanMemory& mem, const MemoryEstimate& e, const LoraConfig& lc, bool rc) {
    const uint64_t block = per_block(lc);
    mem.weights = e.frozen_weights;
    mem.saved_blocks[0] = L * block;
    mem.saved_blocks[1] = block;
    mem.block_inputs = estimate(m, lc, true).activations - block;
    mem.recompute = rc;
    mem.lm_head_chunk = lm_chunk;
    mem.attention_blocks = att_blocks;
    mem.gemm_staging = staging;
    mem.nf4_load = device.is_cpu ? nf4_load_bytes(m, tp) : 0;  // on a GPU node it is host memory
    mem.runtime = device.runtime_bytes;
    mem.data = data_bytes + micro_batch_io;
  };
  PlanMemory& lo = p.lora;
  common(lo, est, cfg.lora, recompute);
  lo.trainable = lo.grads = est.lora_state / 4;  // params, grads, m, v: the same size each
  lo.adam = est.lora_state / 2;
  lo.lora_scratch = est.scratch - bare.scratch;
  lo.activation_grads = est.scratch - lo.lora_scratch - lm_chunk;

  // Full fine-tuning, the comparison: trained weights are fp32 (with an fp32 master copy of
  // bf16 ones); an nf4 config's full fine-tuning is counted as bf16's.
  ModelConfig m16 = m;
  if (is_nf4(m)) m16.dtype = "bf16";
  const ParamLayout base = base_layout(m16, tp);
  const LoraLayout lora = lora_layout(m, cfg.lora, tp);
  const uint64_t base_local = base.total + base.total_bf16;
  PlanMemory& fu = p.full;
  common(fu, is_nf4(m) ? estimate(m16, no_lora, false) : bare, no_lora, false);
  fu.nf4_load = 0;
  fu.trainable = kF32 * base.total_bf16;  // bf16 weights need an fp32 master copy for the update
  fu.grads = kF32 * base_local;
  fu.adam = 2 * kF32 * base_local;
  fu.activation_grads = bare.scratch - lm_chunk;

  // --- collectives ------------------------------------------------------------------------
  // comm/communicator.h counts a call's payload only in a group of more than one rank.
  const int world = tp * dp;
  const uint64_t mb = uint64_t(p.micro_batches), Md = kF32 * M * d;
  PlanCollectives& c = p.comm;
  if (tp > 1) {
    c.tp_embedding = mb * Md;
    c.tp_row_parallel = mb * 2 * L * Md;
    c.tp_lm_head = mb * kF32 * 3 * M;  // per chunk: max of `rows` values, then 2 per row
    // LM head, then per block fc1 and QKV; block 0's QKV skips it (the embedding is frozen).
    c.tp_input_grads = mb * (1 + L + (L - 1)) * Md;
    // A recompute stops after the MLP's GELU: the out-projection's all-reduce runs again, fc2's not.
    c.tp_recompute = recompute ? mb * L * Md : 0;
  }
  if (world > 1) c.grads_world = kF32 * lora.replicated_size;
  if (dp > 1) c.grads_dp = kF32 * (lora.total - lora.replicated_size);
  // Full fine-tuning (trainer/train/grad_sync.h): a replicated tensor's gradient is computed whole,
  // and identical, on every TP rank, so the whole buffer is summed over DP only.
  if (dp > 1) p.full_grads_dp = kF32 * base_local;

  // Open MPI's all-reduce works in a temporary copy of the message (freed after, but the
  // high-water mark keeps it); NCCL reduces in place through its own fixed buffers.
  auto comm_memory = [&](uint64_t largest_message) {
    if (world == 1) return uint64_t(0);
    const int groups = (tp > 1) + (dp > 1) + 1;  // TP, DP when wider than one rank, and the world
    return device.is_cpu ? device.comm_bytes_per_peer * uint64_t(world - 1) + largest_message
                         : device.comm_bytes_per_group * uint64_t(groups);
  };
  lo.comm_buffers = comm_memory(std::max({tp > 1 ? Md : 0, c.grads_world, c.grads_dp}));
  fu.comm_buffers = comm_memory(std::max({tp > 1 ? Md : 0, p.full_grads_world, p.full_grads_dp}));

  // --- FLOPs, as bench's lora_flops_per_token counts them ---------------------------------
  const double n_mm = matmul_weights(arch);
  const double n_lora = lora_weights(arch, cfg.lora), n_lora_recomputed = lora_weights(arch, cfg.lora, true);
  const double attention = attention_flops_per_token(arch, t.seq_len);  // forward; its backward is twice that
  const double tokens = p.tokens_per_step;
  p.flops_lora.forward = tokens * (2 * n_mm + 2 * n_lora + attention);
  p.flops_lora.input_grads = tokens * (2 * n_mm + 2 * n_lora + 2 * attention);
  p.flops_lora.weight_grads = tokens * 2 * n_lora;
  // The recompute runs QKV, the out-projection and fc1 (gate|up), their LoRA and attention.
  const double recomputed_mm = double(L) * d * (arch.qkv_width() + arch.q_width() + arch.mlp_up_width());
  if (recompute) p.flops_lora.recompute = tokens * (2 * recomputed_mm + 2 * n_lora_recomputed + attention);
  p.flops_full.forward = tokens * (2 * n_mm + attention);
  p.flops_full.input_grads = tokens * (2 * n_mm + 2 * attention);
  p.flops_full.weight_grads = tokens * 2 * n_mm;

  p.time_lora = step_time(p.flops_lora, double(c.tp()), c.grads_world, c.grads_dp, cfg, device);
  p.time_full = step_time(p.flops_full, double(c.tp() - c.tp_recompute), p.full_grads_world, p.full_grads_dp, cfg,
                          device);
  const std::string more_tp = tp < largest_tp(arch) ? "raise parallel.tp"
                                                     : "use a device with more memory (tp " + std::to_string(tp) +
                                                           " is the largest this model's heads split into)";
  p.verdict_lora = verdict(lo, device, p.ranks, m.dtype, more_tp);
  p.verdict_full = verdict(fu, device, p.ranks, m16.dtype, more_tp);

  // Parameter counts of the whole model (one TP rank's layout at tp 1, padding excluded).
  const LoraLayout lora_whole = lora_layout(m, cfg.lora, 1);
  p.trainable_params = lora_whole.total;
  const ParamLayout base_whole = base_layout(m16, 1);
  p.base_params = base_whole.total + base_whole.total_bf16;
  return p;
}

std::vector<LayoutTrial> search_layouts(const RunConfig& cfg, const DeviceSpec& device, uint64_t data_bytes) {
  std::vector<LayoutTrial> rows;
  for (int tp = 1, largest = largest_tp(arch_spec(cfg.model)); tp <= largest; tp *= 2) {
    for (const char* dtype : {"fp32", "bf16", "nf4"})
      for (const char* recompute : {"none", "full"}) {
        RunConfig c = cfg;
        c.parallel.tp = tp;
        c.model.dtype = dtype;
        try {
          if (c.model.dtype == "nf4") (void)base_layout(c.model, tp);  // rows of whole 64-weight blocks
        } catch (const std::invalid_argument&) {
          continue;  // nf4 cannot split this shape at this tp
        }
        c.train.recompute = recompute;
        const Plan p = make_plan(c, device, data_bytes);
        LayoutTrial row;
        row.tp = tp;
        row.dtype = dtype;
        row.recompute = recompute;
        row.peak = p.verdict_lora.need;
        row.have = p.verdict_lora.have;
        row.fits = p.verdict_lora.fits;
        row.largest_term = p.verdict_lora.largest_term;
        rows.push_back(row);
      }
  }
  return rows;
}

}  // namespace lora
