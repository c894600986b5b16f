// The trainer's device path without a GPU (issue 14): the CPU's ops run in buffers of their
// own ("device memory" that is not the host masters, moved only by the backend's copies) with
// the model's collectives staged through host memory (HostStagedCommunicator), against the
// plain CPU backend on the same ranks. Everything the CUDA backend adds around its kernels is
// exercised: the frozen and trainable uploads, the gradient download, the tokens and the
// loss statistics crossing, the all-reduce of gradients where they are, the upload after a
// resume. The two runs execute the same ops in the same order, so they must agree bit for
// bit: losses, bytes all-reduced, parameters after the steps, and a run resumed from a
// checkpoint written midway.
//   mpirun -np 4 --oversubscribe device_path <scratch dir>
// Prints one line per check and "N passed, N failed"; exits non-zero on any failure.
#include <mpi.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <new>
#include <string>
#include <vector>

#include "comm/host_staged_communicator.h"
#include "comm/mpi_communicator.h"
#include "tests/model_shape.h"
#include "tests/mpi/test_shard.h"
#include "trainer/train/trainer.h"

namespace {

using namespace lora;

// Host memory that is not the model's host buffers: what a GPU's memory is to the model.
size_t g_copied = 0;  // bytes moved either way, to show the path is taken
void* separate_allocate(size_t bytes) {
  void* p = ::operator new(bytes);
  std::memset(p, 0, bytes);
  return p;
}
void separate_release(void* p) { ::operator delete(p); }
void separate_copy(void* dst, const void* src, size_t bytes) {
  std::memcpy(dst, src, bytes);
  g_copied += bytes;
}
void separate_zero(void* p, size_t bytes) { std::memset(p, 0, bytes); }
const DeviceMemory kSeparate{"separate", false, separate_allocate, separate_release, separate_copy, separate_copy,
                             separate_zero};

ComputeOps<float> separate_ops() {
  ComputeOps<float> ops = cpu_ops<float>();
  ops.name = "cpu-in-separate-memory";
  ops.memory = &kSeparate;
  return ops;
}

RunConfig make_config(const std::string& shard, const std::string& variant, int tp, int dp, const std::string& dir) {
  RunConfig c;
  c.model = test::model_shape(2, 4, 32, 61, 16);  // V=61 is padded at tp 2 and 4
  c.model.dtype = variant == "bf16" ? "bf16" : "fp32";
  c.model.init_std = 0.2f;
  c.lora.enabled = variant != "full";
  c.lora.r = 4;
  c.lora.alpha = 8;
  c.lora.dropout = 0.1f;
  for (bool& t : c.lora.targets) t = true;
  c.optim.lr = 1e-2f;
  c.optim.warmup_steps = 1;
  c.data.train = shard;
  c.train.steps = 4;
  c.train.batch_size = 8;
  c.train.micro_batch = 2;  // gradient accumulation: 2 micro-batches per rank at dp 2
  c.train.seq_len = 16;
  c.train.seed = 23;
  c.parallel.tp = tp;
  c.parallel.dp = dp;
  c.output.dir = dir;
  c.output.metrics.clear();
  return c;
}

struct Run {
  std::vector<double> losses;
  std::vector<uint64_t> grad_bytes, tp_bytes;
  std::vector<float> params;  // this rank's trainable slice after the steps
};

// `steps` steps from a fresh start, or from the checkpoint `resume` (then up to train.steps).
// The device path runs the chunked LM head (as CUDA does; the fused one is the host CPU's), so
// the plain CPU reference is set to it too: bit for bit needs the same summation order.
Run train(const RunConfig& c, Communicator& comm, ComputeBackend* backend, int steps) {
  Trainer t(c, comm, backend);
  if (!backend) t.model().use_unfused_lm_head();
  Run r;
  for (int s = 0; s < steps; ++s) {
    const StepStats st = t.train_step();
    r.losses.push_back(st.loss);
    r.grad_bytes.push_back(st.lora_grad_bytes);
    r.tp_bytes.push_back(st.tp_bytes);
  }
  if (steps < c.train.steps) t.write_checkpoint();
  r.params = t.model().trainable_params();
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  const std::string dir = argc > 1 ? argv[1] : ".";
  if (rank == 0) std::filesystem::remove_all(dir);
  const std::string shard_path = test::write_test_shard(dir, "device_path_tokens.bin", 3, 61, 7);
  const ComputeOps<float> ops = separate_ops();
  int passed = 0, failed = 0;
  auto check = [&](bool ok, const std::string& what) {
    int all_ok = ok ? 1 : 0;
    MPI_Allreduce(MPI_IN_PLACE, &all_ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    all_ok ? ++passed : ++failed;
    if (rank == 0) std::printf("%s %s\n", all_ok ? "ok  " : "FAIL", what.c_str());
  };
  const int tp = size >= 4 ? 2 : 1, dp = size >= 4 ? 2 : 1;
  for (const std::string variant : {"fp32", "bf16", "full"}) {
    const std::string label = variant + " tp=" + std::to_string(tp) + " dp=" + std::to_string(dp) + ": ";
    const std::string run_dir = dir + "/" + variant;
    const RunConfig c = make_config(shard_path, variant, tp, dp, run_dir);
    MpiCommunicator mpi(MPI_COMM_WORLD, tp, dp);
    const Run cpu = train(c, mpi, nullptr, c.train.steps);

    g_copied = 0;
    ComputeBackend separate(ops, std::make_unique<HostStagedCommunicator>(mpi, kSeparate), "separate memory");
    const Run dev = train(c, mpi, &separate, c.train.steps);
    check(g_copied > 0, label + "the device path moved data through the backend's copies");
    check(dev.losses == cpu.losses, label + "losses bit for bit");
    check(dev.grad_bytes == cpu.grad_bytes, label + "gradient bytes all-reduced, step by step");
    check(dev.tp_bytes == cpu.tp_bytes, label + "TP activation bytes, step by step");
    check(dev.params == cpu.params, label + "trainable parameters after the steps, bit for bit");

    // A checkpoint written midway by the device path, resumed by the device path.
    RunConfig first = c;
    first.output.dir = run_dir + "/resumed";
    train(first, mpi, &separate, 2);
    RunConfig second = first;
    second.checkpoint.resume = "auto";
    Trainer t(second, mpi, &separate);
    t.run();
    check(t.model().trainable_params() == cpu.params, label + "resumed at step 2: the same parameters at the end");
  }
  if (rank == 0) std::printf("%d passed, %d failed\n", passed, failed);
  MPI_Finalize();
  return failed ? 1 : 0;
}
