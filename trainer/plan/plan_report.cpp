#include "trainer/plan/plan_report.h"

#include "model/ops/cpu/fused_lm_head.h"

#include <cstdio>
#include <sstream>

#include "model/arch.h"

namespace lora {

namespace {

std::string bytes_text(uint64_t b) {
  char buf[32];
  if (b == 0) return "0";
  if (b >= (uint64_t(1) << 40)) std::snprintf(buf, sizeof buf, "%.2f TiB", b / 1099511627776.0);
  else if (b >= (uint64_t(1) << 30)) std::snprintf(buf, sizeof buf, "%.2f GiB", b / 1073741824.0);
  else if (b >= (uint64_t(1) << 20)) std::snprintf(buf, sizeof buf, "%.1f MiB", b / 1048576.0);
  else std::snprintf(buf, sizeof buf, "%.1f KiB", b / 1024.0);
  return buf;
}

std::string count_text(uint64_t n) {  // 18874368 -> "18,874,368"
  std::string s = std::to_string(n);
  for (int i = int(s.size()) - 3; i > 0; i -= 3) s.insert(size_t(i), ",");
  return s;
}

std::string flops_text(double f) {
  char buf[32];
  if (f == 0) return "0";
  if (f >= 1e15) std::snprintf(buf, sizeof buf, "%.2f PFLOP", f / 1e15);
  else if (f >= 1e12) std::snprintf(buf, sizeof buf, "%.2f TFLOP", f / 1e12);
  else std::snprintf(buf, sizeof buf, "%.2f GFLOP", f / 1e9);
  return buf;
}

std::string seconds_text(double s) {
  char buf[32];
  if (s >= 1) std::snprintf(buf, sizeof buf, "%.2f s", s);
  else std::snprintf(buf, sizeof buf, "%.1f ms", s * 1e3);
  return buf;
}

class Table {
 public:
  void heading(const std::string& text) { out_ << text << "\n"; }
  void row(const std::string& label, const std::string& lora, const std::string& full = "") {
    char buf[256];
    std::snprintf(buf, sizeof buf, "  %-62s %16s %18s\n", label.c_str(), lora.c_str(), full.c_str());
    out_ << buf;
  }
  void line(const std::string& text) { out_ << "  " << text << "\n"; }
  std::string str() const { return out_.str(); }

 private:
  std::ostringstream out_;
};

std::string verdict_text(const Plan& p, const PlanVerdict& v, const char* what) {
  const DeviceSpec& d = p.device;
  std::ostringstream s;
  s << what << (v.fits ? " fits: " : " does not fit: ");
  if (d.is_cpu) s << p.ranks << " rank(s) x " << bytes_text(v.need / p.ranks) << " = ";
  s << bytes_text(v.need) << (v.fits ? " of " : " > ") << bytes_text(v.have) << " ("
    << (d.is_cpu ? "this node's memory" : d.name + " memory") << ", "
    << int(100.0 * double(v.need) / double(v.have) + 0.5) << " %)";
  if (!v.fits) {
    s << "; the largest terms are " << v.largest_term << " " << bytes_text(v.largest_bytes);
    if (v.advice == v.runner_up_advice)
      s << " and " << v.runner_up << " " << bytes_text(v.runner_up_bytes) << ": " << v.advice;
    else
      s << ": " << v.advice << "; " << v.runner_up << " " << bytes_text(v.runner_up_bytes) << ": "
        << v.runner_up_advice;
  }
  return s.str();
}

const char* group_link(int group_size, const DeviceSpec& d) {
  if (d.is_cpu) return "shared memory";
  return group_size <= d.devices_per_node ? "NVLink" : "InfiniBand";
}

}  // namespace

std::string plan_table(const Plan& p) {
  const RunConfig& c = p.cfg;
  const ModelConfig& m = c.model;
  const TrainConfig& t = c.train;
  const DeviceSpec& d = p.device;
  const PlanMemory &lo = p.lora, &fu = p.full;
  const bool rc = lo.recompute;
  Table tab;
  std::ostringstream head;
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "lora_dist plan: %s\n  model   %s, model.dtype %s: %s parameters\n"
                "  lora    r %d on %s: %s trainable parameters (%.4f %% of the base)\n"
                "  layout  tp %d x dp %d = %d rank(s); micro-batch %d x seq_len %d, batch %d (%d micro-batch(es) per rank "
                "per step), train.recompute %s\n"
                "  device  %s: %s\n",
                c.source_path.c_str(), describe(arch_spec(m)).c_str(), m.dtype.c_str(),
                count_text(p.base_params).c_str(), c.lora.r, c.lora.target_list().c_str(),
                count_text(p.trainable_params).c_str(), 100.0 * double(p.trainable_params) / double(p.base_params),
                c.parallel.tp, c.parallel.dp, p.ranks, t.micro_batch, t.seq_len, t.batch_size, p.micro_batches,
                t.recompute.c_str(), d.name.c_str(), d.description.c_str());
  tab.heading(buf);

  tab.heading("memory per rank                                                            LoRA   full fine-tuning");
  tab.row(m.dtype == "nf4" ? std::string("base weights (nf4 block matrices, bf16 embeddings, fp32 vectors)")
                           : "base weights (" + m.dtype + " matrices, fp32 vectors)",
          bytes_text(lo.weights), bytes_text(fu.weights));
  tab.row(std::string("trainable parameters (full: fp32 master of bf16 weights)"), bytes_text(lo.trainable),
          bytes_text(fu.trainable));
  tab.row("gradients (fp32)", bytes_text(lo.grads), bytes_text(fu.grads));
  tab.row("AdamW m, v (fp32)", bytes_text(lo.adam), bytes_text(fu.adam));
  std::snprintf(buf, sizeof buf, "block inputs (%d x %d x %d tokens x d, fp32)", m.n_layer + 1, t.micro_batch,
                t.seq_len);
  tab.row(buf, bytes_text(lo.block_inputs), bytes_text(fu.block_inputs));
  std::snprintf(buf, sizeof buf, "saved block activations, recompute none (%d blocks)%s", m.n_layer, rc ? "" : " *");
  tab.row(buf, bytes_text(lo.saved_blocks[0]), bytes_text(fu.saved_blocks[0]) + " *");
  std::snprintf(buf, sizeof buf, "saved block activations, recompute full (1 block)%s", rc ? " *" : "");
  tab.row(buf, bytes_text(lo.saved_blocks[1]), bytes_text(fu.saved_blocks[1]));
  tab.row("activation gradients and backward scratch", bytes_text(lo.activation_grads), bytes_text(fu.activation_grads));
  if (p.device.is_cpu)  // model/ops/cpu/fused_lm_head.h: one tile, no chunk x V/tp logits
    std::snprintf(buf, sizeof buf, "LM-head fused tile (%d rows x %d vocab columns) + row stats",
                  int(std::min<long>(kLmTileRows, long(t.micro_batch) * t.seq_len)), kLmTileCols);
  else
    std::snprintf(buf, sizeof buf, "LM-head logits chunk (%d rows x V/tp)", int(std::min<long>(1024L, long(t.micro_batch) * t.seq_len)));
  tab.row(buf, bytes_text(lo.lm_head_chunk), bytes_text(fu.lm_head_chunk));
  tab.row("attention score blocks (per thread)", bytes_text(lo.attention_blocks), bytes_text(fu.attention_blocks));
  tab.row("LoRA backward scratch", bytes_text(lo.lora_scratch), bytes_text(fu.lora_scratch));
  tab.row("bf16/nf4 GEMM staging", bytes_text(lo.gemm_staging), bytes_text(fu.gemm_staging));
  if (lo.nf4_load > 0) tab.row("nf4 quantization at load (fp32 absmax, one matrix)", bytes_text(lo.nf4_load), bytes_text(0));
  tab.row(d.is_cpu ? "communication buffers (MPI)" : "communication buffers (NCCL, assumed)", bytes_text(lo.comm_buffers),
          bytes_text(fu.comm_buffers));
  tab.row(d.is_cpu ? "runtime (measured, see below)" : "runtime (assumed, see below)", bytes_text(lo.runtime),
          bytes_text(fu.runtime));
  tab.row("token data and micro-batch buffers", bytes_text(lo.data), bytes_text(fu.data));
  tab.row("peak per rank", bytes_text(lo.peak()), bytes_text(fu.peak()));
  tab.line("(* = the saved activations this run keeps; full fine-tuning is planned without recompute)");
  tab.line("(runtime: " + d.runtime_note + ")");
  tab.line(verdict_text(p, p.verdict_lora, "LoRA"));
  tab.line(verdict_text(p, p.verdict_full, "full fine-tuning"));
  tab.heading("");

  tab.heading("per optimizer step                                                         LoRA   full fine-tuning");
  tab.row("FLOPs, forward (whole job)", flops_text(p.flops_lora.forward), flops_text(p.flops_full.forward));
  tab.row("FLOPs, input gradients", flops_text(p.flops_lora.input_grads), flops_text(p.flops_full.input_grads));
  tab.row("FLOPs, weight gradients (LoRA dA, dB / every weight)", flops_text(p.flops_lora.weight_grads),
          flops_text(p.flops_full.weight_grads));
  tab.row("FLOPs, recompute (train.recompute full)", flops_text(p.flops_lora.recompute), flops_text(0));
  tab.row("FLOPs executed", flops_text(p.flops_lora.executed()), flops_text(p.flops_full.executed()));
  const PlanCollectives& k = p.comm;
  std::snprintf(buf, sizeof buf, "bytes all-reduced per rank, TP group (%d ranks, %s)", c.parallel.tp,
                group_link(c.parallel.tp, d));
  tab.row(buf, count_text(k.tp()), count_text(k.tp() - k.tp_recompute));
  tab.row("  embedding rows", count_text(k.tp_embedding), count_text(k.tp_embedding));
  tab.row("  attention out-projection and fc2 forward", count_text(k.tp_row_parallel), count_text(k.tp_row_parallel));
  tab.row("  vocab-parallel cross-entropy (max, sum exp, target)", count_text(k.tp_lm_head), count_text(k.tp_lm_head));
  tab.row("  input gradients (LM head, fc1, QKV)", count_text(k.tp_input_grads), count_text(k.tp_input_grads));
  tab.row("  recompute: attention out-projection again", count_text(k.tp_recompute), "0");
  std::snprintf(buf, sizeof buf, "gradients, replicated factors over the world (%d ranks)", p.ranks);
  tab.row(buf, count_text(k.grads_world), count_text(p.full_grads_world));
  std::snprintf(buf, sizeof buf, "gradients, TP-sharded factors over DP (%d ranks, %s)", c.parallel.dp,
                group_link(p.ranks, d));
  tab.row(buf, count_text(k.grads_dp), count_text(p.full_grads_dp));
  auto time_rows = [&](const char* what, double lora_s, double full_s) {
    tab.row(what, seconds_text(lora_s), seconds_text(full_s));
  };
  const double peak = p.time_lora.peak_flops;
  std::snprintf(buf, sizeof buf, "compute at %.1f %s per rank (%s peak)", peak >= 1e12 ? peak / 1e12 : peak / 1e9,
                peak >= 1e12 ? "TFLOP/s" : "GFLOP/s", m.dtype.c_str());
  time_rows(buf, p.time_lora.compute_s, p.time_full.compute_s);
  time_rows("TP all-reduces", p.time_lora.tp_comm_s, p.time_full.tp_comm_s);
  time_rows("gradient all-reduces", p.time_lora.grad_comm_s, p.time_full.grad_comm_s);
  time_rows("estimated step time (no overlap)", p.time_lora.step_s(), p.time_full.step_s());
  std::snprintf(buf, sizeof buf, "%.0f", p.tokens_per_step / p.time_lora.step_s());
  std::string lora_tok = buf;
  std::snprintf(buf, sizeof buf, "%.0f", p.tokens_per_step / p.time_full.step_s());
  tab.row("tokens/s (estimated)", lora_tok, buf);
  return tab.str();
}

namespace {

nlohmann::json memory_json(const PlanMemory& m) {
  return {{"weights", m.weights}, {"trainable", m.trainable}, {"grads", m.grads}, {"adam_m_v", m.adam},
          {"block_inputs", m.block_inputs}, {"saved_blocks_recompute_none", m.saved_blocks[0]},
          {"saved_blocks_recompute_full", m.saved_blocks[1]}, {"recompute", m.recompute ? "full" : "none"},
          {"activations", m.activations()}, {"activation_grads", m.activation_grads},
          {"lm_head_chunk", m.lm_head_chunk}, {"lora_scratch", m.lora_scratch},
          {"attention_blocks", m.attention_blocks}, {"gemm_staging", m.gemm_staging}, {"nf4_load", m.nf4_load},
          {"comm_buffers", m.comm_buffers}, {"runtime", m.runtime}, {"data", m.data},
          {"peak_per_rank", m.peak()}};
}

nlohmann::json flops_json(const PlanFlops& f) {
  return {{"forward", f.forward}, {"input_grads", f.input_grads}, {"weight_grads", f.weight_grads},
          {"recompute", f.recompute}, {"model", f.model()}, {"executed", f.executed()}};
}

nlohmann::json time_json(const PlanTime& t, double tokens) {
  return {{"peak_flops_per_rank", t.peak_flops}, {"compute_s", t.compute_s}, {"tp_comm_s", t.tp_comm_s},
          {"grad_comm_s", t.grad_comm_s}, {"step_s", t.step_s()}, {"tokens_per_s", tokens / t.step_s()}};
}

nlohmann::json verdict_json(const PlanVerdict& v) {
  return {{"fits", v.fits}, {"need_bytes", v.need}, {"have_bytes", v.have}, {"largest_term", v.largest_term},
          {"advice", v.advice}, {"runner_up", v.runner_up}, {"runner_up_advice", v.runner_up_advice}};
}

}  // namespace

nlohmann::json plan_json(const Plan& p) {
  const RunConfig& c = p.cfg;
  const PlanCollectives& k = p.comm;
  const DeviceSpec& d = p.device;
  nlohmann::json j;
  j["config"] = {{"yaml", c.source_path}, {"n_layer", c.model.n_layer}, {"d_model", c.model.d_model},
                 {"n_head", c.model.n_head}, {"vocab_size", c.model.vocab_size}, {"dtype", c.model.dtype},
                 {"lora_r", c.lora.r}, {"lora_targets", c.lora.target_list()}, {"tp", c.parallel.tp},
                 {"dp", c.parallel.dp}, {"micro_batch", c.train.micro_batch}, {"seq_len", c.train.seq_len},
                 {"batch_size", c.train.batch_size}, {"recompute", c.train.recompute},
                 {"micro_batches_per_rank", p.micro_batches}, {"tokens_per_step", p.tokens_per_step},
                 {"base_params", p.base_params}, {"trainable_params", p.trainable_params}};
  j["device"] = {{"name", d.name}, {"description", d.description}, {"memory_bytes", d.memory_bytes},
                 {"peak_flops_fp32", d.peak_flops_fp32}, {"peak_flops_bf16", d.peak_flops_bf16},
                 {"intra_node_bytes_per_s", d.intra_node_bytes_per_s},
                 {"inter_node_bytes_per_s", d.inter_node_bytes_per_s}, {"devices_per_node", d.devices_per_node},
                 {"runtime_bytes", d.runtime_bytes}, {"runtime_note", d.runtime_note},
                 {"threads_per_rank", d.threads_per_rank}};
  j["lora"] = {{"memory", memory_json(p.lora)},
               {"flops", flops_json(p.flops_lora)},
               {"collectives",
                {{"tp_activation_bytes", k.tp()}, {"tp_embedding", k.tp_embedding},
                 {"tp_row_parallel", k.tp_row_parallel}, {"tp_lm_head", k.tp_lm_head},
                 {"tp_input_grads", k.tp_input_grads}, {"tp_recompute", k.tp_recompute},
                 {"lora_grad_bytes", k.grads()}, {"grads_world", k.grads_world}, {"grads_dp", k.grads_dp}}},
               {"time", time_json(p.time_lora, p.tokens_per_step)},
               {"verdict", verdict_json(p.verdict_lora)}};
  j["full_finetuning"] = {{"memory", memory_json(p.full)},
                          {"flops", flops_json(p.flops_full)},
                          {"collectives",
                           {{"tp_activation_bytes", k.tp() - k.tp_recompute},
                            {"grad_bytes", p.full_grads_world + p.full_grads_dp},
                            {"grads_world", p.full_grads_world}, {"grads_dp", p.full_grads_dp}}},
                          {"time", time_json(p.time_full, p.tokens_per_step)},
                          {"verdict", verdict_json(p.verdict_full)}};
  return j;
}

std::string search_table(const Plan& p, const std::vector<LayoutTrial>& rows) {
  std::ostringstream s;
  s << "smallest layout on " << p.device.name << " (dp " << p.cfg.parallel.dp << ", micro-batch "
    << p.cfg.train.micro_batch << " x seq_len " << p.cfg.train.seq_len << "): peak per "
    << (p.device.is_cpu ? "node" : "device") << " by tp, model.dtype and train.recompute\n";
  char buf[256];
  std::snprintf(buf, sizeof buf, "  %4s  %-5s %-9s %12s  %s\n", "tp", "dtype", "recompute", "peak", "verdict");
  s << buf;
  const LayoutTrial* chosen = nullptr;
  for (const LayoutTrial& r : rows) {
    // A TP group wider than a node runs its per-layer all-reduces over the network.
    const std::string where = !p.device.is_cpu && r.tp > p.device.devices_per_node ? ", TP group crosses nodes" : "";
    std::snprintf(buf, sizeof buf, "  %4d  %-5s %-9s %12s  %s\n", r.tp, r.dtype.c_str(), r.recompute.c_str(),
                  bytes_text(r.peak).c_str(),
                  (r.fits ? "fits" + where : "does not fit (largest: " + r.largest_term + where + ")").c_str());
    s << buf;
    if (!chosen && r.fits && r.dtype == p.cfg.model.dtype && r.recompute == p.cfg.train.recompute) chosen = &r;
  }
  const LayoutTrial* any = nullptr;
  for (const LayoutTrial& r : rows)
    if (r.fits && (!any || r.tp < any->tp)) any = &r;
  if (chosen)
    s << "  with model.dtype " << p.cfg.model.dtype << " and recompute " << p.cfg.train.recompute
      << ", the smallest tp that fits is " << chosen->tp << "\n";
  else
    s << "  with model.dtype " << p.cfg.model.dtype << " and recompute " << p.cfg.train.recompute
      << ", no tp up to " << largest_tp(arch_spec(p.cfg.model)) << " (the largest the heads split into) fits\n";
  if (any) {
    s << "  the smallest tp that fits at all is " << any->tp << " (model.dtype " << any->dtype << ", recompute "
      << any->recompute << ")";
    // What fails at that tp without each of its choices.
    for (const LayoutTrial& r : rows)
      if (r.tp == any->tp && !r.fits && (r.dtype == any->dtype) != (r.recompute == any->recompute))
        s << "; with " << r.dtype << " and recompute " << r.recompute << " it needs " << bytes_text(r.peak) << " > "
          << bytes_text(r.have);
    s << "\n";
  } else {
    s << "  no layout up to tp = " << largest_tp(arch_spec(p.cfg.model)) << " fits\n";
  }
  return s.str();
}

nlohmann::json search_json(const std::vector<LayoutTrial>& rows) {
  nlohmann::json j = nlohmann::json::array();
  for (const LayoutTrial& r : rows)
    j.push_back({{"tp", r.tp}, {"dtype", r.dtype}, {"recompute", r.recompute}, {"peak_bytes", r.peak},
                 {"have_bytes", r.have}, {"fits", r.fits}, {"largest_term", r.largest_term}});
  return j;
}

}  // namespace lora
