#!/usr/bin/env bash
# Runs on the GPU machine (device tool), from the repository root, after launch/gpu/pack.sh:
# unpacks .gpu_carry/bundle.tar.xz, finds the image's CUDA 13 libraries, points Open MPI at
# the bundle's copy, then, each step logged to $OUT (the tool brings it back):
#   1. cuda_op_tests: every op, CUDA vs CPU;
#   2. cuda_model_tests, nccl_tests: the whole model CUDA vs CPU, NCCL through one-rank groups;
#   3. tests/gpu/cuda_runs.sh: lora_dist on CUDA vs CPU (tp 1, tp 2 on one GPU, checkpoints
#      across backends);
#   4. lora_dist bench on the GPU: GPT-2 124M, 355M and a 1.3B shape at T 1024, bf16 frozen
#      weights, LoRA r 8 on q,v and on q,k,v,o (tokens/s, MFU against the dense bf16 peak,
#      GPU memory), as JSON lines in $OUT/bench.jsonl.
# Steps 1-3 stop at the first failure's end; the bench runs whatever they said. About 6 min.
set -uo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
out=${OUT:-$repo/out/gpu_check}
mkdir -p "$out"
b=$(mktemp -d)
tar -xJf "$repo/.gpu_carry/bundle.tar.xz" -C "$b" || { echo "no bundle: run launch/gpu/pack.sh first"; exit 2; }
# CUDA's libraries: the toolkit's, else the pip wheels' (nvidia-cublas, nvidia-cuda-runtime, nvidia-nccl-cu13).
cuda_libs=""
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib \
         $(python3 -c 'import nvidia, os; p = nvidia.__path__[0]; print(" ".join(os.path.join(p, s, "lib") for s in os.listdir(p)))' 2>/dev/null); do
  { [ -e "$d/libcublas.so.13" ] || [ -e "$d/libcudart.so.13" ] || [ -e "$d/libnccl.so.2" ]; } && cuda_libs="$cuda_libs:$d"
done
export OPAL_PREFIX=$b/usr PMIX_INSTALL_PREFIX=$b/usr PATH=$b/usr/bin:$PATH
export PMIX_MCA_mca_base_component_path=$b/usr/lib/x86_64-linux-gnu/pmix2/lib/pmix
export LORA_CUDA_PLUGIN=$b/bin/liblora_cuda.so  # the test binaries need it too (lora_dist finds it beside itself)
export LD_LIBRARY_PATH="$b/bin:$b/lib:$b/usr/lib/x86_64-linux-gnu/openmpi/lib:$b/usr/lib/x86_64-linux-gnu/pmix2/lib${cuda_libs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader OMPI_MCA_pml=ob1
export OMPI_MCA_btl_vader_single_copy_mechanism=none  # no CMA in a sandboxed container
# The memory check counts activations as host memory (the CPU plan), and this machine's
# MemTotal starts low and grows: state the host's memory instead of reading it.
export LORA_DIST_NODE_MEMORY=${LORA_DIST_NODE_MEMORY:-120G}
export OMP_NUM_THREADS=4
{ date -u; nvidia-smi 2>&1 || echo "nvidia-smi: not available"; echo "CUDA libraries from:${cuda_libs:- (none found)}"; } |
  tee "$out/device.txt"
status=0
step() {  # step <name> <command...>: runs it, its output to $out/<name>.log
  local name=$1; shift
  echo "=== $name"
  "$@" > "$out/$name.log" 2>&1; local rc=$?
  tail -4 "$out/$name.log"
  echo "=== $name: exit $rc"
  [ "$rc" -eq 0 ] || status=1
}
step cuda_op_tests "$b/bin/cuda_op_tests"
step cuda_model_tests "$b/bin/cuda_model_tests"
step nccl_tests "$b/bin/nccl_tests"
step cuda_runs bash "$repo/tests/gpu/cuda_runs.sh" "$b/bin/lora_dist" "$b/cuda_runs" "$repo"

# The benchmark: one config per shape and target set; micro-batch = batch, one rank.
bench() {  # bench <name> <n_layer> <n_head> <d_model> <micro-batch> <targets>
  cat > "$b/$1.yaml" <<YAML
model: {n_layer: $2, n_head: $3, d_model: $4, vocab_size: 50257, context: 1024, init: seed, dtype: bf16}
lora: {r: 8, alpha: 16, targets: [$6]}
data: {train: $repo/data/demo_train.bin}
train: {steps: 1, batch_size: $5, micro_batch: $5, seq_len: 1024}
device: {backend: cuda}
YAML
  step "bench_$1" mpirun -np 1 "$b/bin/lora_dist" bench --yaml "$b/$1.yaml" --warmup 2 --steps 5 --json "$out/bench.jsonl"
}
bench gpt2_124m_qv 12 12 768 8 "q, v"
bench gpt2_124m_qkvo 12 12 768 8 "q, k, v, o"
bench gpt2_355m_qv 24 16 1024 8 "q, v"
bench gpt2_355m_qkvo 24 16 1024 8 "q, k, v, o"
bench gpt3_1.3b_qv 24 16 2048 4 "q, v"
bench gpt3_1.3b_qkvo 24 16 2048 4 "q, k, v, o"
exit "$status"
