#include "trainer/bench/bench.h"

#include <omp.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <fstream>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "io/token_shard.h"
#include "model/ops/gemm_clock.h"
#include "model/rng.h"
#include "trainer/machine/device_preset.h"
#include "trainer/machine/fma_peak.h"
#include "trainer/plan/plan.h"
#include "trainer/machine/runtime_baseline.h"
#include "trainer/train/trainer.h"

namespace lora {

double lora_flops_per_token(const ModelConfig& m, const LoraConfig& l, int seq_len, double scored_share) {
  const ArchSpec a = arch_spec(m);
  const double n_mm = matmul_weights(a), attention = attention_flops_per_token(a, seq_len);  // forward
  const double skipped_head = (1.0 - scored_share) * double(m.vocab_size) * m.d_model;  // weights of it not run
  if (!l.enabled) return 6.0 * (n_mm - skipped_head) + 3.0 * attention;  // full fine-tuning: + the weight gradients
  const double n_lora = lora_weights(a, l);
  return 4.0 * (n_mm - skipped_head) + 6.0 * n_lora + 3.0 * attention;
}

namespace {

size_t synthetic_token_count(const RunConfig& cfg, int steps) {
  return static_cast<size_t>(steps) * cfg.train.batch_size * cfg.train.seq_len + 1;
}

// Their bytes in memory as the plan counts data: 4 per token, 4 per shuffled window.
uint64_t synthetic_token_bytes(const RunConfig& cfg, int steps) {
  const uint64_t n = synthetic_token_count(cfg, steps);
  return 4 * n + 4 * ((n - 1) / cfg.train.seq_len);
}

// Random tokens, all scored: enough windows for every step to see fresh data.
TokenShard synthetic_tokens(const RunConfig& cfg, int steps) {
  TokenShard s;
  s.path = "<synthetic>";
  s.vocab_size = static_cast<uint32_t>(cfg.model.vocab_size);
  const size_t n = synthetic_token_count(cfg, steps);
  s.tokens.resize(n);
  for (size_t i = 0; i < n; ++i) s.tokens[i] = philox(cfg.train.seed, 0x42454e43u, 0, i, i >> 32)[0] % s.vocab_size;
  return s;
}

double peak_rss_mib() { return static_cast<double>(peak_rss_bytes()) / (1 << 20); }

// Rank 0's per-op wall time per step, largest first; the rest of the step is the
// optimizer, the gradient all-reduces and the data. With `gemm` (the CPU backend), each op's
// time inside GEMM calls beside it (model/ops/gemm_clock.h), and the step's GEMM share.
// Returns the step's ms in GEMM calls.
double print_op_times(const OpTimers& t, int steps, double step_ms, bool gemm) {
  struct Row { double ms, gemm_ms; std::string name; };
  std::vector<Row> rows;
  double total = 0, gemm_total = 0;
  for (const auto& [name, sec] : t.seconds) {
    const auto g = t.gemm_seconds.find(name);
    const double gemm_ms = g == t.gemm_seconds.end() ? 0 : std::max(0.0, g->second * 1e3 / steps);  // no -0.0
    rows.push_back({sec * 1e3 / steps, gemm_ms, name});
    total += rows.back().ms, gemm_total += rows.back().gemm_ms;
  }
  std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) { return a.ms > b.ms; });
  std::printf("where a step's time goes (rank 0, ms per step, %% of the mean step%s):\n",
              gemm ? "; of it in GEMM calls, and the rest" : "");
  auto line = [&](const std::string& name, double ms, double gemm_ms) {
    if (gemm) std::printf("  %-44s %8.1f  %5.1f%%   GEMM %8.1f  rest %7.1f\n", name.c_str(), ms, 100 * ms / step_ms, gemm_ms, ms - gemm_ms);
    else std::printf("  %-44s %8.1f  %5.1f%%\n", name.c_str(), ms, 100 * ms / step_ms);
  };
  for (const Row& r : rows) line(r.name, r.ms, r.gemm_ms);
  line("(rest: optimizer, grad all-reduce, data)", step_ms - total, 0);
  if (gemm)
    std::printf("in GEMM calls: %.1f of %.1f ms (%.1f %%); outside them: %.1f ms (%.1f %% of the step)\n", gemm_total,
                step_ms, 100 * gemm_total / step_ms, step_ms - gemm_total, 100 * (step_ms - gemm_total) / step_ms);
  return gemm_total;
}

}  // namespace

namespace {
// The GPU preset whose chip `description` names ("... NVIDIA H200 ..." -> h200-141gb), or null.
const DeviceSpec* matching_gpu_preset(const std::string& description) {
  std::string lower = description;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  for (const DeviceSpec& d : gpu_presets())
    if (lower.find(d.name.substr(0, d.name.find('-'))) != std::string::npos) return &d;  // "h200"
  return nullptr;
}
}  // namespace

int run_bench(const RunConfig& cfg_in, Communicator& comm, const BenchOptions& opt, Watchdog* watchdog,
              ComputeBackend* backend) {
  RunConfig cfg = cfg_in;
  cfg.train.steps = opt.warmup + opt.steps;
  cfg.data.val.clear();
  cfg.output.metrics.clear();
  // The plan's peak RSS for this process, printed beside the measured one: the runtime is
  // measured now, before the model exists, as `lora_dist plan` measures its own.
  const DeviceSpec cpu = cpu_device(omp_get_max_threads(), comm.size(Group::World), cfg.model.dtype == "bf16",
                                    cfg.train.micro_batch * cfg.train.seq_len, /*measure_rates=*/false);
  // --data: the shard's windows as a run draws them, its loss mask included (the LM head skips
  // the rows whose mask is 0); else random tokens, every one scored.
  TokenShard data;
  if (!opt.data.empty()) {
    data = read_token_shard(opt.data);
    cfg.data.train = opt.data;
  }
  const uint64_t data_bytes = opt.data.empty() ? synthetic_token_bytes(cfg, cfg.train.steps) : token_data_bytes(cfg);
  size_t scored = 0;
  for (uint8_t v : data.mask) scored += v != 0;
  const double scored_share = data.has_mask() ? double(scored) / data.size() : 1.0;
  Trainer trainer(cfg, comm, opt.data.empty() ? synthetic_tokens(cfg, cfg.train.steps) : std::move(data), backend);
  const bool gpu = trainer.backend().on_gpu();
  const DeviceSpec* gpu_preset = gpu ? matching_gpu_preset(trainer.backend().line()) : nullptr;
  const bool root = comm.rank(Group::World) == 0;

  std::vector<double> ms;
  StepStats last;
  trainer.model().timers().enabled = opt.warmup == 0;
  set_gemm_clock(!gpu);  // a GPU's GEMMs are asynchronous: their calls' time says nothing
  for (int i = 0; i < cfg.train.steps; ++i) {
    comm.barrier(Group::World);
    if (watchdog) watchdog->step_started(i);
    last = trainer.train_step();
    if (watchdog) watchdog->step_finished(last.seconds);
    double sec = last.seconds;
    comm.all_reduce_max(&sec, 1, Group::World);  // a step lasts as long as its slowest rank
    if (i >= opt.warmup) ms.push_back(sec * 1e3);
    if (i + 1 == opt.warmup) {  // time the ops of the timed steps only
      trainer.model().timers().enabled = true;
      trainer.model().timers().reset();
    }
  }
  std::sort(ms.begin(), ms.end());
  const double median = ms[ms.size() / 2];
  double mean = 0;
  for (double v : ms) mean += v / ms.size();
  const double tokens_per_step = static_cast<double>(cfg.train.batch_size) * cfg.train.seq_len;
  const double tok_s = tokens_per_step / (median / 1e3);
  // The LM head runs on the scored positions only, so the MFU stays the share of the peak really used.
  const double flop_tok = lora_flops_per_token(cfg.model, cfg.lora, cfg.train.seq_len, scored_share);
  const double gflops = tok_s * flop_tok / 1e9;
  const int ranks = comm.size(Group::World), threads = omp_get_max_threads();
  double per_core = opt.peak_gflops_per_core;
  std::string gpu_peak_source = "given";
  if (gpu && per_core <= 0) {  // per GPU: one rank per GPU
    if (!gpu_preset)
      throw std::runtime_error("bench: no GPU preset matches this device (" + trainer.backend().line() +
                               "); give its dense bf16 peak with --peak-gflops-per-core (GFLOP/s per GPU)");
    per_core = gpu_preset->peak_flops_bf16 / 1e9;
    gpu_peak_source = "dense bf16 peak of the " + gpu_preset->name + " preset";
  }
  Watchdog::LongPhase measuring(watchdog, "measuring the FMA peak on every rank");
  // Every rank with all its threads at once, after a barrier: the peak of the cores while all
  // of them are busy, as in a step. Each thread times its own register-only FMA loop (best of
  // 5 trials); the ranks' sums add up to the job's peak. Ranks sharing a node each measure
  // with their own threads at the same moment, so SMT siblings, a shared FPU and the host's
  // other guests show up here as they do in a step. (Rank 0 alone, while the others spin in
  // MPI on the SMT sibling of its core, measured 20-56 GFLOP/s/core on one Zen 3 VM, under
  // what its GEMMs then achieved.) More threads than cores on a node can only make a
  // thread's best trial look faster than its share of a core (it may run alone for one),
  // so an oversubscribed node reads a peak too high and an MFU too low, never above 100 %.
  auto measure_peak = [&] {
    comm.barrier(Group::World);
    double total = measure_fma_peak_gflops_all_threads(threads);
    comm.all_reduce_sum(&total, 1, Group::World);
    return total / (threads * comm.size(Group::World));
  };
  const bool measured = per_core <= 0;
  if (measured) per_core = measure_peak();
  auto peak_of = [&](double core) { return gpu ? core * ranks : core * threads * ranks; };
  // An MFU above 100 % means the peak is wrong, not the step fast: no core does more than its
  // FMA units. A measured peak is taken again (twice, the best kept: a busy moment of the
  // host can slow the FMA loop); every rank sees the same gflops and peak (both reduced), so
  // all of them re-measure together. What is still above is said beside the MFU.
  for (int again = 0; measured && per_core > 0 && again < 2 && gflops > peak_of(per_core); ++again)
    per_core = std::max(per_core, measure_peak());
  const double peak = peak_of(per_core);
  const bool mfu_above_peak = peak > 0 && gflops > peak;  // 0: no FMA vectors to measure
  double device_mib = trainer.backend().device_bytes_in_use() / 1048576.0;
  comm.all_reduce_max(&device_mib, 1, Group::World);
  double rss = peak_rss_mib();
  comm.all_reduce_max(&rss, 1, Group::World);
  const Plan plan = make_plan(cfg, cpu, data_bytes);
  double planned = (cfg.lora.enabled ? plan.lora : plan.full).peak() / 1048576.0;
  comm.all_reduce_max(&planned, 1, Group::World);
  // On a GPU, `plan`'s prediction for the matching preset, beside the memory in use.
  double planned_gpu = 0;
  if (gpu_preset) {
    const Plan on_gpu = make_plan(cfg, *gpu_preset, data_bytes);
    planned_gpu = (cfg.lora.enabled ? on_gpu.lora : on_gpu.full).peak() / 1048576.0;
  }
  // Exact bytes of the frozen weights (all matrices in model.dtype, LayerNorms and biases fp32).
  double frozen[2] = {double(trainer.model().frozen_bytes()), double(trainer.model().frozen_matrix_bytes())};
  comm.all_reduce_max(frozen, 2, Group::World);
  const double weights_mib = frozen[0] / 1048576.0;
  const std::string kernel = trainer.backend().frozen_gemm_kernel(trainer.model().dtype());

  if (root) {
    const ModelConfig& m = cfg.model;
    const std::string trained = cfg.lora.enabled ? "LoRA r" + std::to_string(cfg.lora.r) + " on " + cfg.lora.target_list()
                                                 : std::string("full fine-tuning");
    std::printf("bench: %s T%d micro-batch %d batch %d | %s | tp %d dp %d | %d threads/rank\n",
                describe(arch_spec(m)).c_str(), cfg.train.seq_len, cfg.train.micro_batch, cfg.train.batch_size,
                trained.c_str(), cfg.parallel.tp, cfg.parallel.dp, threads);
    if (!opt.data.empty())
      std::printf("data: %s (%.1f %% of its tokens scored by the loss mask)\n", opt.data.c_str(), 100 * scored_share);
    std::printf("step: median %.1f ms (min %.1f, max %.1f) over %d timed steps after %d warm-up\n", median, ms.front(),
                ms.back(), opt.steps, opt.warmup);
    std::printf("tokens/s: %.1f\n", tok_s);
    if (gpu) {
      std::printf("%s\n", trainer.backend().line().c_str());
      std::printf("model FLOP/token: %.4f GFLOP | achieved %.1f GFLOP/s | MFU %.1f%% of %.1f GFLOP/s (%s, %.0f GFLOP/s x %d GPUs)\n",
                  flop_tok / 1e9, gflops, 100.0 * gflops / peak, peak, gpu_peak_source.c_str(), per_core, ranks);
      std::printf("GPU memory in use (max over ranks): %.0f MiB; planned %.0f MiB (lora_dist plan --device %s)\n",
                  device_mib, planned_gpu, gpu_preset ? gpu_preset->name.c_str() : "?");
    } else {
      std::printf("model FLOP/token: %.4f GFLOP%s | achieved %.1f GFLOP/s | MFU %.1f%% of %.1f GFLOP/s (fp32 FMA peak %.1f/core%s x %d cores)\n",
                  flop_tok / 1e9, scored_share < 1 ? " (the LM head on the scored positions only)" : "", gflops, 100.0 * gflops / peak, peak, per_core,
                  opt.peak_gflops_per_core > 0 ? ", given" : ", measured", threads * ranks);
    }
    if (mfu_above_peak)
      std::printf("warning: MFU above 100 %%: the step achieved %.1f GFLOP/s, more than the %s peak of %.1f GFLOP/s, so "
                  "that peak is wrong and the MFU above means nothing. %s\n",
                  gflops, gpu && opt.peak_gflops_per_core <= 0 ? "preset's" : (measured ? "measured" : "given"), peak,
                  measured ? "The FMA loop ran slower than this CPU's FMA units, three times: cores busy with "
                             "other work while it ran, or a CPU whose FMA latency needs more independent chains "
                             "than trainer/machine/fma_peak.cpp runs. Give the peak with --peak-gflops-per-core."
                           : "Check --peak-gflops-per-core (GFLOP/s per core; per GPU on a GPU).");
    if (gpu)  // the CPU plan counts activations in host memory; on the GPU they are in its memory (above)
      std::printf("peak RSS per rank: %.0f MiB (max over %d ranks): the host masters, of which frozen weights %.0f MiB\n",
                  rss, ranks, weights_mib);
    else
      std::printf("peak RSS per rank: %.0f MiB (max over %d ranks), of which frozen weights %.0f MiB; planned %.0f MiB "
                  "(lora_dist plan, %+.1f %%)\n",
                  rss, ranks, weights_mib, planned, 100.0 * (planned - rss) / rss);
    std::printf("frozen weights per rank (max over ranks), model.dtype %s: %.0f bytes = matrices %.0f + LayerNorms and biases %.0f\n",
                m.dtype.c_str(), frozen[0], frozen[1], frozen[0] - frozen[1]);
    std::printf("frozen-weight GEMMs: %s\n", kernel.c_str());
    const size_t rep = trainer.model().lora_layout().replicated_size * sizeof(float);
    const size_t shard = trainer.model().lora_params().size() * sizeof(float) - rep;
    if (!cfg.lora.enabled)
      std::printf("bytes all-reduced per step, rank 0: gradients %llu = every base tensor's over DP (dp=%d)%s; "
                  "TP activations %llu\n",
                  static_cast<unsigned long long>(last.lora_grad_bytes), cfg.parallel.dp,
                  cfg.parallel.dp > 1 ? "" : " (none at dp=1)", static_cast<unsigned long long>(last.tp_bytes));
    else std::printf("bytes all-reduced per step, rank 0: LoRA grads %llu = replicated factors %zu B over the world (%d ranks)"
                " + TP-sharded factors %zu B over DP (dp=%d)%s; TP activations %llu\n",
                static_cast<unsigned long long>(last.lora_grad_bytes), ranks > 1 ? rep : 0, ranks,
                cfg.parallel.dp > 1 ? shard : 0, cfg.parallel.dp, cfg.parallel.dp > 1 ? "" : " (none at dp=1)",
                static_cast<unsigned long long>(last.tp_bytes));
    const double gemm_ms = print_op_times(trainer.model().timers(), opt.steps, mean, !gpu);
    const OpTimers& timers = trainer.model().timers();
    auto op_ms = [&](const std::string& name) {
      const auto it = timers.seconds.find(name);
      return it == timers.seconds.end() ? 0.0 : it->second * 1e3 / opt.steps;
    };
    std::fflush(stdout);
    if (!opt.json.empty()) {
      std::ofstream out(opt.json, std::ios::app);
      out << nlohmann::json{{"n_layer", m.n_layer}, {"d_model", m.d_model}, {"n_head", m.n_head},
                            {"vocab_size", m.vocab_size}, {"seq_len", cfg.train.seq_len},
                            {"micro_batch", cfg.train.micro_batch}, {"tp", cfg.parallel.tp}, {"dp", cfg.parallel.dp},
                            {"threads_per_rank", threads}, {"step_ms_median", median}, {"tokens_per_s", tok_s},
                            {"gflops", gflops}, {"mfu", gflops / peak}, {"peak_gflops", peak}, {"mfu_above_peak", mfu_above_peak}, {"peak_rss_mib", rss}, {"planned_peak_rss_mib", planned}, {"weights_mib", weights_mib},
                            {"recompute", cfg.train.recompute},
                            {"dtype", m.dtype}, {"frozen_bytes", frozen[0]}, {"frozen_matrix_bytes", frozen[1]},
                            {"frozen_gemm_kernel", kernel},
                            {"lora_grad_bytes", last.lora_grad_bytes}, {"tp_activation_bytes", last.tp_bytes},
                            {"backend", gpu ? "cuda" : "cpu"}, {"gpu_memory_mib", device_mib},
                            {"planned_gpu_memory_mib", planned_gpu}, {"data", opt.data.empty() ? "random" : opt.data},
                            {"scored_share", scored_share}, {"model_flop_per_token", flop_tok}, {"lm_head_ms", op_ms("lm head + cross-entropy, fwd+bwd")},
                            {"gemm_ms", gpu ? 0.0 : gemm_ms}, {"step_ms_mean", mean}}
                 .dump()
          << '\n';
      out.close();
      if (!out) throw std::runtime_error(opt.json + ": bench --json: cannot append the result: " + std::strerror(errno));
    }
  }
  return 0;
}

}  // namespace lora
