// lora_dist: LoRA fine-tuning of a GPT-style model over MPI ranks.
//   mpirun -np N lora_dist --yaml run.yaml
//   mpirun -np N lora_dist bench --yaml run.yaml [--steps 5 --warmup 2]
//   lora_dist merge --yaml run.yaml --adapter out/adapter.h5 --out merged.h5
//   lora_dist export --yaml run.yaml --adapter out/adapter.h5 --peft peft_adapter/ [--merged merged_hf/]
//   lora_dist analyze --yaml run.yaml --adapter a.h5 --adapter b.h5 [--layer 0 --module q,v --json out.json --plots DIR]
//   lora_dist plan --yaml run.yaml [--set parallel.tp=8 ...] [--device h100-80gb] [--json] [--search]
//   mpirun -np N lora_dist generate --yaml run.yaml [--adapter out/adapter.h5] --prompt "..." [sampling]
//
// Exit status (every rank returns the same one; README "Errors and exit codes"):
//   0   the run finished: final checkpoint and <output.dir>/adapter.h5 written
//   1   an internal or system error on some rank; the job was aborted (MPI_Abort)
//   2   config error (bad run.yaml, wrong number of ranks, a run that cannot fit in this
//       machine's memory) or bad command line
//   3   an input file is unusable: token shard, base weights, checkpoint or adapter (the
//       message names the file and the tensor or field)
//   4   training stopped on a non-finite loss or gradient (train.on_nonfinite: stop);
//       the parameters and every checkpoint are as they were before that step
//   5   the watchdog ended the job: a collective made no progress for parallel.timeout_s
//       (a lost link or host); resume from the last checkpoint
//   75  preempted (EX_TEMPFAIL of <sysexits.h>): SIGTERM or SIGUSR1 reached a rank, every
//       rank finished its step and the checkpoint of that step was written. Requeue the
//       job; with checkpoint.resume: auto it continues exactly where it stopped.
#include <mpi.h>
#include <omp.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <string>

#include "comm/collective_guard.h"
#include "comm/mpi_communicator.h"
#include "io/input_error.h"
#include "trainer/analyze/analyze.h"
#include "trainer/bench/bench.h"
#include "trainer/machine/blas_kernels.h"
#include "trainer/machine/compute_backend.h"
#include "trainer/config/config_loader.h"
#include "trainer/machine/memory_check.h"
#include "trainer/machine/mpi_launch.h"
#include "trainer/devices/device_spec.h"
#include "trainer/export/export.h"
#include "trainer/generate/generate.h"
#include "trainer/export/merge.h"
#include "trainer/prepare/prepare.h"
#include "trainer/plan/plan_command.h"
#include "trainer/train/preemption.h"
#include "trainer/train/trainer.h"

extern "C" void openblas_set_num_threads(int);

namespace {

constexpr int kExitUsage = lora::kExitConfig;  // a bad command line is a config error

int world_rank() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}

// N must equal tp * dp; every rank sees the same numbers, so every rank stops with this.
void check_world_size(const lora::RunConfig& cfg) {
  int n = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  const int want = cfg.parallel.tp * cfg.parallel.dp;
  if (n != want)
    throw lora::ConfigError(cfg.source_path + ": parallel: tp*dp = " + std::to_string(cfg.parallel.tp) + "*" +
                            std::to_string(cfg.parallel.dp) + " = " + std::to_string(want) + " ranks, but the job has " +
                            std::to_string(n) + " (mpirun -np / srun -n must match)");
}

void set_threads(int threads) {
  if (threads <= 0) return;
  omp_set_num_threads(threads);
  openblas_set_num_threads(threads);
}

struct MergeOptions {
  std::string yaml, adapter, out;
};

int run(const std::string& yaml, const lora::BenchOptions* bench, const MergeOptions* merge,
        const lora::GenerateOptions* generate) {
  lora::DeviceConfig device;
  lora::RunConfig cfg = lora::load_run_config(yaml, {}, &device);
  if (merge) {  // one process's work; extra ranks have nothing to do
    if (world_rank() == 0) {
      lora::merge_adapter_into_base(cfg, merge->adapter, merge->out);
      std::printf("merged %s into the base weights -> %s (use it with model.init: file)\n", merge->adapter.c_str(),
                  merge->out.c_str());
    }
    return 0;
  }
  check_world_size(cfg);
  set_threads(cfg.train.threads);
  lora::MpiCommunicator comm(MPI_COMM_WORLD, cfg.parallel.tp, cfg.parallel.dp);
  // From here on no collective may block forever (a lost link, a dead host). On the GPU the
  // NCCL communicators are aborted first, so no kernel keeps waiting for a dead peer.
  static std::atomic<lora::ComputeBackend*> backend_to_abort{nullptr};  // read by the watchdog's thread
  lora::Watchdog watchdog(cfg.parallel.timeout_s, world_rank(), [](int code) {
    if (lora::ComputeBackend* b = backend_to_abort.load()) b->abort_collectives();
    MPI_Abort(MPI_COMM_WORLD, code);
  });
  comm.set_watchdog(&watchdog);
  // Across hosts under mpirun, the watchdog waits until the runtime's keepalive has had time to
  // notice a lost link (+4 s for mpirun to act): anything a rank sends before that leaves mpirun
  // or the cut-off host's daemon waiting on the kernel's retransmission limit, up to ~15 minutes.
  if (const double detect = lora::lost_link_detection_s(); detect > 0) watchdog.set_minimum_limit(detect + 4);
  // Every rank throws alike when device.backend: cuda cannot be had (a config error, exit 2).
  // generate decodes on the CPU: its KV cache is host memory (model/kv_cache.h).
  lora::ComputeBackend backend =
      generate ? lora::ComputeBackend::cpu("generate decodes on the CPU: its KV cache is host memory")
               : lora::open_compute_backend(device, comm, MPI_COMM_WORLD, &watchdog);
  backend_to_abort = &backend;
  struct ForgetBackend {  // destroyed before `backend`: the watchdog never reaches a dead one
    ~ForgetBackend() { backend_to_abort = nullptr; }
  } forget_backend_first;
  // generate's stdout is the text alone: its notes, this line too, go to stderr.
  if (world_rank() == 0) std::fprintf(generate ? stderr : stdout, "%s\n", backend.line().c_str());
  if (const std::string note = lora::lost_link_note(); world_rank() == 0 && !note.empty())
    std::fprintf(stderr, "%s\n", note.c_str());
  if (generate) {
    lora::run_generate(cfg, comm, *generate);
    return 0;
  }
  lora::check_fits_in_memory(cfg, comm);
  if (bench) return lora::run_bench(cfg, comm, *bench, &watchdog, &backend);
  lora::Trainer trainer(cfg, comm, &backend);
  trainer.set_watchdog(&watchdog);
  if (trainer.run() == lora::RunOutcome::Finished) return 0;
  if (world_rank() == 0)
    std::printf("lora_dist: preempted by %s at step %d; checkpoint %s written; exiting with status %d "
                "(EX_TEMPFAIL: requeue the job, resume: auto continues from there)\n",
                lora::signal_name(trainer.preempted_by()), trainer.step(), trainer.last_checkpoint().c_str(),
                lora::kExitPreempted);
  std::fflush(stdout);
  return lora::kExitPreempted;
}

// CLI11 validators for values that parse as numbers but make no sense.
const CLI::Validator kFinitePositive(
    [](const std::string& s) -> std::string {
      double v = 0;
      try {
        size_t used = 0;
        v = std::stod(s, &used);
        if (used != s.size()) return "not a number: " + s;
      } catch (const std::exception&) {
        return "not a number: " + s;
      }
      return std::isfinite(v) && v > 0 ? "" : "must be a finite number > 0, got " + s;
    },
    "POSITIVE");
// The folder of an output file must exist: otherwise the result would be silently lost at the end.
const CLI::Validator kInExistingFolder(
    [](const std::string& s) -> std::string {
      namespace fs = std::filesystem;
      const fs::path parent = fs::path(s).parent_path();
      std::error_code ec;
      if (fs::is_directory(s, ec)) return s + " is a folder, not a file";
      if (!parent.empty() && !fs::is_directory(parent, ec)) return "folder " + parent.string() + " does not exist";
      return "";
    },
    "FILE");

// A whole-string number, or the reason it is not one.
std::string parse_number(const std::string& s, double* v) {
  char* end = nullptr;
  *v = std::strtod(s.c_str(), &end);
  return s.empty() || *end != '\0' ? "not a number: " + s : "";
}
const CLI::Validator kNonNegativeFinite(
    [](const std::string& s) -> std::string {
      double v = 0;
      if (std::string e = parse_number(s, &v); !e.empty()) return e;
      return std::isfinite(v) && v >= 0 ? "" : "must be a finite number >= 0, got " + s;
    },
    "NUMBER");
const CLI::Validator kProbability(
    [](const std::string& s) -> std::string {
      double v = 0;
      if (std::string e = parse_number(s, &v); !e.empty()) return e;
      return v > 0 && v <= 1 ? "" : "must be in (0, 1], got " + s;
    },
    "P");

// "\n", "\t" and "\\" in a --stop string, so that a newline can be given without $'...'.
std::string unescape(const std::string& s) {
  std::string r;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\\' || i + 1 == s.size()) {
      r += s[i];
      continue;
    }
    const char c = s[++i];
    r += c == 'n' ? '\n' : c == 't' ? '\t' : c;
  }
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"lora_dist: LoRA fine-tuning of GPT-style models across MPI ranks (tensor x data parallel), on CPUs or "
               "GPUs (the config's device.backend: auto | cpu | cuda, device.comm: auto | nccl | mpi; the run's first "
               "line names the backend)"};
  app.set_version_flag("--version", std::string("lora_dist ") + LORA_VERSION);
  app.footer("Exit status: 0 done, 1 internal error (job aborted), 2 config or command-line error, 3 unusable input "
             "file, 4 stopped on a non-finite loss or gradient, 5 watchdog (a collective hung: lost link or host), 75 preempted (checkpoint written; requeue).");
  std::string yaml;
  app.add_option("--yaml", yaml, "run configuration (see README: YAML keys)");
  lora::BenchOptions bench;
  CLI::App* bench_cmd = app.add_subcommand(
      "bench", "time training steps of the config's shape on synthetic tokens (or a token shard: --data), with the "
               "time per op and, on the CPU, how much of it is inside GEMM calls");
  bench_cmd->add_option("--yaml", bench.yaml, "config giving the shape, LoRA, parallel layout and batch")->required();
  bench_cmd->add_option("--steps", bench.steps, "timed steps (1..100000)")->check(CLI::Range(1, 100000));
  bench_cmd->add_option("--warmup", bench.warmup, "untimed steps before them (0..100000)")->check(CLI::Range(0, 100000));
  bench_cmd->add_option("--peak-gflops-per-core", bench.peak_gflops_per_core,
                        "peak the MFU is measured against: fp32 FMA GFLOP/s per core on the CPU (default: measured here), "
                        "dense bf16 GFLOP/s per GPU on the CUDA backend (default: the matching GPU preset's)")
      ->check(kFinitePositive);
  bench_cmd->add_option("--json", bench.json, "append the result as a JSON line to this file (its folder must exist)")
      ->check(kInExistingFolder);
  bench_cmd->add_option("--data", bench.data,
                        "step on this token shard's windows (lora_dist prepare's format), its loss mask included: rows "
                        "whose mask is 0 skip the LM head; default: random tokens, every one scored");
  MergeOptions merge;
  CLI::App* merge_cmd = app.add_subcommand(
      "merge", "fold a trained adapter into the base weights (W0 + s B A) and write them as an HDF5 base-weights file");
  merge_cmd->add_option("--yaml", merge.yaml, "the run's config: base model and LoRA settings")->required();
  merge_cmd->add_option("--adapter", merge.adapter, "adapter.h5 or a checkpoint")->required()->check(CLI::ExistingFile);
  merge_cmd->add_option("--out", merge.out, "merged base weights to write (model.init: file)")
      ->required()
      ->check(kInExistingFolder);
  lora::PrepareOptions prep;
  CLI::App* prepare_cmd = app.add_subcommand(
      "prepare", "tokenize JSONL examples into token shards: {\"prompt\", \"completion\"} (loss on the completion and "
                 "the EOS token) or {\"messages\": [{\"role\", \"content\"}...]} rendered by the folder's chat template "
                 "(Llama 3, ChatML/Qwen, Llama 2; loss on the assistant turns only); or plain text (loss on every "
                 "token); one process, no mpirun");
  prepare_cmd->add_option("--tokenizer", prep.tokenizer,
                          "model folder: tokenizer.json (Hugging Face BPE), tokenizer.model (SentencePiece) or "
                          "vocab.json + merges.txt (GPT-2); tokenizer_config.json beside them for the EOS and chat template")
      ->required()
      ->check(CLI::ExistingDirectory);
  prepare_cmd->add_option("--input", prep.inputs, "training files: *.jsonl examples, anything else plain text")
      ->required()
      ->check(CLI::ExistingFile);
  prepare_cmd->add_option("--val", prep.val_inputs, "validation files (same kinds)")->check(CLI::ExistingFile);
  prepare_cmd->add_option("--val-fraction", prep.val_fraction,
                          "hold out this share of the inputs instead: JSONL examples drawn by --seed, text files' ends")
      ->check(CLI::Range(0.0, 0.99));
  prepare_cmd->add_option("--out", prep.out_train, "training shard to write")->required()->check(kInExistingFolder);
  prepare_cmd->add_option("--out-val", prep.out_val, "validation shard to write")->check(kInExistingFolder);
  prepare_cmd->add_option("--seq-len", prep.seq_len, "train.seq_len: an example longer than seq_len + 1 tokens is cut")
      ->check(CLI::Range(1, 1 << 30));
  prepare_cmd->add_option("--overlong", prep.overlong, "truncate (default) or drop an example longer than that")
      ->check(CLI::IsMember({"truncate", "drop"}));
  prepare_cmd->add_option("--seed", prep.seed, "which JSONL examples go to validation (default 42)");
  lora::ExportOptions exp;
  CLI::App* export_cmd = app.add_subcommand(
      "export", "write a trained adapter as a Hugging Face PEFT LoRA adapter for GPT-2 (adapter_config.json + "
                "adapter_model.safetensors) and/or the base with it merged as an HF GPT-2 folder (model.safetensors + "
                "config.json); one process, no mpirun");
  export_cmd->add_option("--yaml", exp.yaml, "the run's config: base model and LoRA settings")->required();
  // Not CLI::ExistingFile: a missing adapter is an unusable input (exit 3, named), as in a run.
  export_cmd->add_option("--adapter", exp.adapter,
                         "adapter.h5 or a checkpoint (required, unless the config is full fine-tuning, "
                         "lora.enabled: false, whose model --merged writes as it is)");
  export_cmd->add_option("--peft", exp.peft, "PEFT adapter folder to write (must not exist, or be empty)");
  export_cmd->add_option(
      "--merged", exp.merged,
      "HF GPT-2 folder to write with W0 + s B A folded in, in the base's dtype (must not exist, or be empty)");
  export_cmd->add_option("--dtype", exp.dtype,
                         "--merged's tensors in fp32, bf16 or fp16 (default: the base's dtype as loaded)")
      ->check(CLI::IsMember({"fp32", "bf16", "fp16"}));
  export_cmd->footer(
      "q, k and v become one adapter on GPT-2's fused attn.c_attn: A = [A_q; A_k; A_v] stacked, B\n"
      "block-structured with zeros, rank and alpha in rank_pattern/alpha_pattern so the scale is\n"
      "unchanged; o, fc1, fc2 become attn.c_proj, mlp.c_fc, mlp.c_proj (fan_in_fan_out: true).\n"
      "--merged writes model.safetensors (transformer.h.N.attn.c_attn.weight [in, out] Conv1D, biases,\n"
      "ln_*, wte, wpe; lm_head tied) and config.json (n_layer, n_head, n_embd, vocab_size, n_positions,\n"
      "layer_norm_epsilon, gpt2, gelu_new): no LoRA code needed. Its dtype is the base's as loaded: an HF\n"
      "base's files' (F32, BF16, F16), F32 for a seeded or HDF5 base, or --dtype's; the merge is done in\n"
      "fp32. With model.dtype nf4 the base merged is the NF4 base the adapter trained on, dequantized\n"
      "(QLoRA's merge); --dtype bf16 then gives the usual 16-bit folder.\n"
      "Each folder appears only once its files are complete. Examples:\n"
      "  lora_dist export --yaml run.yaml --adapter out/adapter.h5 --peft out/peft\n"
      "  # python: PeftModel.from_pretrained(GPT2LMHeadModel.from_pretrained(\"gpt2\"), \"out/peft\")\n"
      "  lora_dist export --yaml run.yaml --adapter out/adapter.h5 --merged out/merged\n"
      "  lora_dist export --yaml full.yaml --merged out/hf   # lora.enabled: false, model.init: file of model.h5\n"
      "  # python: GPT2LMHeadModel.from_pretrained(\"out/merged\"); lora_dist: model: {init: hf, path: out/merged}");
  lora::AnalyzeOptions an;
  CLI::App* analyze_cmd = app.add_subcommand(
      "analyze", "measure trained LoRA adapters as section 7 of the LoRA paper (Hu et al. 2021) does: the subspace "
                 "similarity phi of two adapters' A matrices for every (i, j), and how much each dW = s B A amplifies "
                 "directions of its base weight W; one process, no mpirun");
  analyze_cmd->add_option("--yaml", an.yaml, "run config: the base model (model:) every adapter was trained on")
      ->required();
  // Not CLI::ExistingFile: a missing adapter is an unusable input (exit 3, named), as in export.
  analyze_cmd->add_option("--adapter", an.adapters,
                          "adapter.h5, checkpoint or PEFT folder; repeat it (two or more for phi). PATH@RUN.yaml "
                          "takes r, alpha and targets from that config's lora: section")
      ->required()
      ->take_all();
  analyze_cmd->add_option("--layer", an.layers, "layers to analyse: a list like 0,5,11, or all (default)");
  analyze_cmd->add_option("--module", an.modules,
                          "modules: a list of q, k, v, o, fc1, fc2 (GPT) or q, k, v, o, gate, up, down (Llama) (default: each one every adapter targets)");
  analyze_cmd->add_option("--pairs", an.pairs,
                          "adapters phi compares: first (default: [1] with each other), all, or a list like 1-2,2-3");
  analyze_cmd->add_option("--max-i", an.max_i, "phi for i = 1..N, the rows (default: r of the pair's first adapter)")
      ->check(CLI::Range(1, 1 << 20));
  analyze_cmd->add_option("--max-j", an.max_j, "phi for j = 1..N, the columns (default: r of its second adapter)")
      ->check(CLI::Range(1, 1 << 20));
  analyze_cmd->add_option("--random-draws", an.random_draws,
                          "random orthonormal U, V per amplification row, averaged (1..10000, default 10)")
      ->check(CLI::Range(1, 10000));
  analyze_cmd->add_option("--seed", an.seed, "seed of those draws (default 0): same seed, same numbers");
  analyze_cmd->add_option("--json", an.json, "write every number (whole phi grids, norms, factors) to this JSON file")
      ->check(kInExistingFolder);
  analyze_cmd->add_option("--plots", an.plots,
                          "draw each phi grid as a PNG heatmap into this folder (launch/plot_analysis.py, "
                          "python3-matplotlib); the JSON goes there too unless --json names it");
  analyze_cmd->footer(
      "phi(A1, A2, i, j) = ||U1^i' U2^j||_F^2 / min(i, j), U^i the top-i right singular vectors of an\n"
      "adapter's A [r, in] (the paper's Figures 3 and 4: 1 where one span holds the other, 0 orthogonal).\n"
      "Amplification (Table 7): dW = s B A with U [out, r], V [r, in] its top-r singular vectors;\n"
      "||U' W V'||_F of the base weight W (q, k, v: row blocks of attn.qkv.weight; o attn.proj, fc1\n"
      "mlp.fc, fc2 mlp.proj), beside the same with W's own top-r directions and with random ones;\n"
      "factor = ||dW||_F / ||U' W V'||_F. SVDs in double (Eigen). An adapter.h5 or checkpoint carries its\n"
      "own r, alpha and targets; a PEFT folder takes --yaml's lora: section, or PATH@RUN.yaml's.\n"
      "Example (bash launch/analyze_demo.sh: q, v adapters of r 4, r 16 and r 16 with another seed on\n"
      "the demo's base):\n"
      "  lora_dist analyze --yaml r4.yaml --adapter r4/adapter.h5 --adapter r16/adapter.h5 \\\n"
      "      --adapter r16_seed7/adapter.h5 --pairs all --layer 3 --json analysis.json --plots plots/\n"
      "prints the adapters, each phi grid (i rows, j columns; the first 8 x 8) and one amplification row\n"
      "per adapter and module (r 4 on v: ||dW|| 7.12, ||U' W V'|| 0.343, factor 20.8; r 16: 7.1);\n"
      "plots/phi_layer3_v_1v2.png is one heatmap. Exit status 2: a bad option (a layer out of range, a\n"
      "module an adapter lacks, i or j above r); 3: an unusable adapter or one of another model shape or base.");
  lora::PlanOptions plan;
  CLI::App* plan_cmd = app.add_subcommand(
      "plan", "per-rank memory, FLOPs, collective bytes and step time of a run on a device, LoRA beside full "
              "fine-tuning, without launching it");
  plan_cmd->add_option("--yaml", plan.yaml, "the run's config (plus an optional device: {preset: NAME} section)")
      ->required();
  plan_cmd->add_option("--set", plan.set, "section.key=value over the file, checked like the file's keys (repeatable)")
      ->type_name("KEY=VALUE");
  const std::vector<std::string> presets = lora::device_preset_names();
  plan_cmd->add_option("--device", plan.device, "device preset, over the file's device.preset (default cpu)")
      ->check(CLI::IsMember(presets));
  plan_cmd->add_flag("--json", plan.json, "print JSON (bytes, FLOPs, seconds) instead of the table");
  plan_cmd->add_flag("--search", plan.search,
                     "also plan every tp (1, 2, 4, ... n_head) with fp32/bf16 and recompute none/full, and name "
                     "the smallest layout that fits");
  plan_cmd->footer(
      "Example: GPT-3 175B with LoRA r 4 on q, v at T 2048, micro-batch 1 on 8 H100s:\n"
      "  lora_dist plan --yaml launch/examples/gpt3_175b_lora.yaml --device h100-80gb \\\n"
      "      --set parallel.tp=8 --set model.dtype=bf16 --set train.recompute=full\n"
      "prints the bytes per rank (frozen shard, LoRA state, activations kept in each recompute mode,\n"
      "transient and runtime buffers, the peak), the FLOPs and collective bytes of a step, an estimated\n"
      "step time, the same for full fine-tuning beside them, and whether the run fits the device;\n"
      "--search tries every tp with fp32/bf16 and recompute none/full and names the smallest that fits.\n"
      "The cpu preset is this machine, measured (FMA peak, memory, the process's runtime baseline).");
  lora::GenerateOptions gen;
  CLI::App* gen_cmd = app.add_subcommand(
      "generate", "continue a prompt with the base model, with or without a trained adapter, under the config's "
                  "tp x dp layout (mpirun -np tp*dp); greedy or sampled (temperature, top-k, top-p, seed), KV cache");
  gen_cmd->add_option("--yaml", gen.yaml, "the run's config: base model, LoRA settings, parallel.tp and dp")->required();
  CLI::Option* adapter_opt =
      gen_cmd->add_option("--adapter", gen.adapter, "a trained adapter: adapter.h5 or a checkpoint of this config");
  gen_cmd->add_option("--peft", gen.peft, "or a PEFT LoRA adapter folder that fits lora.targets")->excludes(adapter_opt);
  gen_cmd->add_option("--tokenizer", gen.tokenizer,
                      "model folder with tokenizer.json, tokenizer.model or vocab.json + merges.txt, or \"bytes\" "
                      "for byte-level models; "
                      "default: model.path of a model.init: hf config");
  CLI::Option* prompt_opt = gen_cmd->add_option("--prompt", gen.prompt, "the prompt text (a special token's text, <|endoftext|>, is the token)");
  CLI::Option* prompt_file_opt =
      gen_cmd->add_option("--prompt-file", gen.prompt_file, "or read the prompt from this file (- : standard input)")
          ->excludes(prompt_opt);
  gen_cmd->add_option("--max-new-tokens", gen.max_new_tokens, "at most this many new tokens (default 64)")
      ->check(CLI::Range(1, 1 << 20));
  gen_cmd->add_option("--temperature", gen.sampling.temperature, "0 (default): greedy; otherwise sample from "
                                                                  "softmax(logits / temperature)")
      ->check(kNonNegativeFinite);
  gen_cmd->add_option("--top-k", gen.sampling.top_k, "sample among the k most likely tokens (0, default: all)")
      ->check(CLI::Range(0, 1 << 30));
  gen_cmd->add_option("--top-p", gen.sampling.top_p,
                      "sample among the fewest most likely tokens whose probability reaches p (default 1: all)")
      ->check(kProbability);
  gen_cmd->add_option("--seed", gen.sampling.seed, "seed of the draws (default 0): same seed, same text");
  std::vector<std::string> stops;
  gen_cmd->add_option("--stop", stops, "stop once the text ends with this string (repeatable; \\n is a newline)");
  gen_cmd->add_flag("--ignore-eot", gen.ignore_eot, "do not stop at the end-of-sequence token (the tokenizer's EOS, <|endoftext|> for GPT-2, and the folder's generation_config.json eos_token_id)");
  CLI::Option* gen_json_opt =
      gen_cmd->add_option("--json", gen.json, "append a JSON record (prompt and new token ids, text, timings) to this file")
          ->check(kInExistingFolder);
  CLI::Option* eval_opt =
      gen_cmd
          ->add_option("--eval", gen.eval,
                       "exact-match evaluation: a JSONL file of {\"prompt\", \"completion\" [, \"task\"]} records; "
                       "each prompt is continued until a --stop string (default \\n), and the answer, the stop "
                       "string cut off, is compared with the completion; prints the accuracy per task")
          ->excludes(prompt_opt)
          ->excludes(prompt_file_opt)
          ->excludes(gen_json_opt);
  gen_cmd->add_option("--eval-out", gen.eval_out,
                      "with --eval: write each record's answer (one JSON line each: task, prompt, expected, "
                      "answer, correct) and then the accuracy line to this file")
      ->check(kInExistingFolder)
      ->needs(eval_opt);
  gen_cmd->footer(
      "The continuation goes to standard output as it is generated (the prompt is not repeated); a\n"
      "summary line (tokens, why it stopped, prefill time, decode tokens/s, KV cache bytes) to\n"
      "standard error. Sampling follows Hugging Face's generate: temperature, then top-k, then top-p,\n"
      "then one draw keyed by (seed, step), so every TP rank draws the same token (checked each step).\n"
      "Examples:\n"
      "  mpirun -np 4 lora_dist generate --yaml launch/examples/demo.yaml --adapter out/demo/adapter.h5 \\\n"
      "      --tokenizer bytes --prompt $'reverse: lemon\\n=> ' --stop '\\n'\n"
      "  mpirun -np 2 lora_dist generate --yaml run.yaml --peft out/peft --prompt \"The capital of France is\" \\\n"
      "      --temperature 0.8 --top-k 40 --top-p 0.95 --seed 1 --max-new-tokens 100\n"
      "  mpirun -np 4 lora_dist generate --yaml launch/examples/demo.yaml --adapter out/demo/adapter.h5 \\\n"
      "      --tokenizer bytes --eval data/tasks_heldout.jsonl --eval-out out/demo/answers.jsonl\n"
      "With --eval, stdout is the table of exact-match accuracy per task (a record's \"task\", else \"all\");\n"
      "a file that cannot be read, a line that is not a JSON object with string \"prompt\" and \"completion\",\n"
      "or a prompt too long for model.context is an input error (exit 3) naming the file and line.\n"
      "The config's parallel.tp x dp must equal the number of ranks; dp replicas generate the same text.");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version are "errors" with status 0; every real one is a usage error (2),
    // not CLI11's own 100+ codes.
    if (e.get_exit_code() == 0) return app.exit(e);
    std::fprintf(stderr, "lora_dist: command line: %s\nRun with --help for more information.\n", e.what());
    return kExitUsage;
  }
  if (prepare_cmd->parsed()) return lora::prepare_command(prep);  // no MPI: one process's work
  if (export_cmd->parsed()) {  // the same (--merged starts a one-process MPI itself: trainer/export/export.cpp)
    if (exp.peft.empty() && exp.merged.empty()) {
      std::fprintf(stderr, "lora_dist: command line: export: --peft DIR, --merged DIR or both are required\n"
                           "Run with --help for more information.\n");
      return kExitUsage;
    }
    return lora::export_command(exp);
  }
  if (analyze_cmd->parsed()) return lora::analyze_command(an);  // one process (MPI as a singleton: trainer/analyze/analyze.cpp)
  const bool is_bench = bench_cmd->parsed(), is_merge = merge_cmd->parsed(), is_plan = plan_cmd->parsed(),
             is_generate = gen_cmd->parsed();
  if (is_generate) {
    if (gen.prompt.empty() && gen.prompt_file.empty() && !prompt_opt->count() && gen.eval.empty()) {
      std::fprintf(stderr, "lora_dist: command line: generate: --prompt TEXT, --prompt-file FILE or --eval FILE is "
                           "required\n"
                           "Run with --help for more information.\n");
      return kExitUsage;
    }
    for (const std::string& s : stops) {
      if (s.empty()) {
        std::fprintf(stderr, "lora_dist: command line: generate: --stop: an empty string would stop at once\n");
        return kExitUsage;
      }
      gen.stop.push_back(unescape(s));
    }
  }
  if (!is_bench && !is_merge && !is_plan && !is_generate && yaml.empty()) {
    std::fprintf(stderr, "lora_dist: --yaml run.yaml is required\n%s", app.help().c_str());
    return kExitUsage;
  }

  lora::ensure_vector_blas_kernels(argv);
  lora::install_preemption_handlers();  // before MPI_Init: its threads must inherit the blocked signals
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
  int rc = 0;
  try {
    // One process plans for tp x dp ranks; under mpirun the other ranks have nothing to do.
    if (is_plan) rc = world_rank() == 0 ? lora::run_plan(plan) : 0;
    else rc = run(is_bench ? bench.yaml : is_merge ? merge.yaml : is_generate ? gen.yaml : yaml,
                  is_bench ? &bench : nullptr, is_merge ? &merge : nullptr, is_generate ? &gen : nullptr);
  } catch (const lora::ConfigError& e) {
    // Every rank reads the same file and fails the same way (or agreed to: collective_guard.h),
    // so no collective is pending.
    std::fprintf(stderr, "lora_dist: config error: %s [rank %d]\n", e.what(), world_rank());
    rc = kExitUsage;
  } catch (const lora::CheckpointError& e) {
    // Rank 0 decided and told every rank (io/checkpoint.h): all are here, none in a collective.
    if (world_rank() == 0) std::fprintf(stderr, "lora_dist: checkpoint error: %s\n", e.what());
    rc = lora::kExitBadInput;
  } catch (const lora::InputError& e) {
    // Thrown through agree_on_failure: the first rank that failed says why, the others are quiet.
    std::fprintf(stderr, "lora_dist: input error: %s [rank %d]\n", e.what(), world_rank());
    rc = lora::kExitBadInput;
  } catch (const lora::NonFiniteError& e) {
    // The loss and the gradient norm are all-reduced: every rank stops at the same step.
    if (world_rank() == 0) std::fprintf(stderr, "lora_dist: stopped: %s\n", e.what());
    rc = lora::kExitNonFinite;
  } catch (const lora::PeerFailure& e) {
    rc = e.exit_code;  // the rank that failed printed the message
  } catch (const std::exception& e) {
    // Other ranks may be inside a collective: abort the whole job rather than let them wait.
    std::fprintf(stderr, "lora_dist: rank %d: error: %s\n", world_rank(), e.what());
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  std::fflush(stdout);
  std::fflush(stderr);
  MPI_Finalize();
  return rc;
}
