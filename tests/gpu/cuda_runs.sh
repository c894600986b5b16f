#!/usr/bin/env bash
# lora_dist itself on the CUDA backend (issue 14), against the CPU backend on the same demo
# data and shape:
#   1. tp 1: the losses of 12 steps, CUDA vs CPU;
#   2. tp 2 on one GPU with device.comm: mpi (host-staged collectives: NCCL refuses two
#      ranks on one GPU) vs the CPU's tp 2;
#   3. checkpoints across backends: a CUDA run's step-6 checkpoint resumed on the CPU, and a
#      CPU run's resumed on CUDA, each ending with the other's losses;
#   with 2 GPUs or more:
#   4. dp 2 over NCCL: the gradient bytes all-reduced per step equal the CPU run's (the LoRA
#      gradient bytes) and the losses match;
#   5. a rank that stalls: the NCCL watchdog ends the job with status 5.
# Exit 77 (ctest: skipped) with the reason where lora_dist cannot use a GPU.
#   cuda_runs.sh <lora_dist> <work dir> <source dir>
set -uo pipefail
bin=$1 work=$2 src=$3
mpirun=(mpirun --oversubscribe --allow-run-as-root)
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
rm -rf "$work" && mkdir -p "$work"
passed=0 failed=0
check() {  # check "<what>" <command...>
  local what=$1; shift
  if "$@"; then passed=$((passed + 1)); echo "ok   $what"; else failed=$((failed + 1)); echo "FAIL $what"; fi
}

# config <name> <backend> <comm> <tp> <dp> [resume] -> path of a yaml
config() {
  local name=$1 backend=$2 comm=$3 tp=$4 dp=$5 resume=${6:-none}
  cat > "$work/$name.yaml" <<YAML
model: {n_layer: 4, n_head: 4, d_model: 128, vocab_size: 256, context: 64, init: seed, init_seed: 1234, init_std: 0.1}
lora: {r: 16, alpha: 32, dropout: 0.05, targets: [q, k, v, o, fc1, fc2]}
optim: {lr: 3.0e-3, warmup_steps: 2, decay: cosine, grad_clip: 1.0}
data: {train: $src/data/demo_train.bin}
train: {steps: 12, batch_size: 16, micro_batch: 4, seq_len: 64, log_every: 4, seed: 42}
parallel: {tp: $tp, dp: $dp, timeout_s: 60}
checkpoint: {every: 6, resume: $resume}
device: {backend: $backend, comm: $comm}
output: {dir: $work/out_$name, metrics: metrics.jsonl}
YAML
  echo "$work/$name.yaml"
}

run() {  # run <name> <ranks> <yaml> [env...]: the run's exit status; its log in $work/<name>.log
  local name=$1 np=$2 yaml=$3; shift 3
  env "$@" "${mpirun[@]}" -np "$np" "$bin" --yaml "$yaml" > "$work/$name.log" 2>&1
}

losses() {  # the train losses of a run's metrics, one per line, from step $2 on (default 1)
  grep '"type":"train"' "$work/out_$1/metrics.jsonl" | sed 's/.*"loss":\([^,}]*\).*"step":\([0-9]*\).*/\2 \1/;s/.*"step":\([0-9]*\).*"loss":\([^,}]*\).*/\1 \2/' |
    awk -v from="${2:-1}" '$1 >= from {print $2}'
}

close() {  # close <run a> <run b> <from step> <tolerance>: every loss within the relative tolerance
  paste <(losses "$1" "$3") <(losses "$2" "$3") |
    awk -v tol="$4" 'NF != 2 {bad = 1} NF == 2 {r = ($1 - $2) / $2; if (r < 0) r = -r; if (r > max) max = r; n++}
      END {printf "     (%d steps, max relative difference %.2e)\n", n, max; exit (bad || n == 0 || max > tol)}'
}

grad_bytes() { grep '"type":"train"' "$work/out_$1/metrics.jsonl" | grep -o '"lora_grad_bytes":[0-9]*' | sort -u; }

# 0. Can lora_dist use a GPU here?
if ! run probe 1 "$(config probe cuda auto 1 1)"; then
  if grep -q "cannot use a GPU" "$work/probe.log"; then
    echo "SKIP: $(grep -o 'cannot use a GPU.*' "$work/probe.log" | head -1)"
    exit 77
  fi
  echo "FAIL the probe run on the CUDA backend:"; cat "$work/probe.log"; exit 1
fi
gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU')
[ "${gpus:-0}" -ge 1 ] || gpus=1
grep -m1 '^backend:' "$work/probe.log"

# 1. tp 1. fp32 LoRA: the GPU sums in another order, ~1e-7 per reduction; 12 AdamW steps.
run cpu1 1 "$(config cpu1 cpu auto 1 1)"
run cuda1 1 "$(config cuda1 cuda nccl 1 1)"
check "tp 1: CUDA losses = CPU losses within 1e-4" close cuda1 cpu1 1 1e-4
check "tp 1: the run says it computes on CUDA" grep -q '^backend: cuda, device 0' "$work/cuda1.log"

# 2. tp 2, both ranks on GPU 0, collectives through host memory.
run cpu2 2 "$(config cpu2 cpu auto 2 1)"
run cuda2 2 "$(config cuda2 cuda mpi 2 1)"
check "tp 2 on one GPU (device.comm: mpi): losses = CPU tp 2 within 1e-4" close cuda2 cpu2 1 1e-4

# 3. Checkpoints across backends (the same full-tensor HDF5 files).
run gpu_to_cpu 1 "$(config gpu_to_cpu cpu auto 1 1 "$work/out_cuda1/checkpoints/step_00000006.h5")"
check "a CUDA checkpoint resumed on the CPU: steps 7-12 = the CUDA run's within 1e-4" close gpu_to_cpu cuda1 7 1e-4
run cpu_to_gpu 1 "$(config cpu_to_gpu cuda nccl 1 1 "$work/out_cpu1/checkpoints/step_00000006.h5")"
check "a CPU checkpoint resumed on CUDA: steps 7-12 = the CPU run's within 1e-4" close cpu_to_gpu cpu1 7 1e-4

if [ "$gpus" -ge 2 ]; then
  # 4. dp 2 over NCCL, one GPU per rank.
  run cpu_dp2 2 "$(config cpu_dp2 cpu auto 1 2)"
  run nccl_dp2 2 "$(config nccl_dp2 cuda nccl 1 2)"
  check "dp 2 over NCCL: losses = CPU dp 2 within 1e-4" close nccl_dp2 cpu_dp2 1 1e-4
  check "dp 2 over NCCL: gradient bytes per step = the CPU run's ($(grad_bytes cpu_dp2))" \
    test "$(grad_bytes nccl_dp2)" = "$(grad_bytes cpu_dp2)" -a -n "$(grad_bytes cpu_dp2)"
  # 5. Rank 1 stops in step 4: rank 0 waits in an NCCL all-reduce; its watchdog must end the job.
  yaml=$(config stall cuda nccl 1 2)
  sed -i 's/timeout_s: 60/timeout_s: 10/' "$yaml"
  start=$SECONDS
  run stall 2 "$yaml" LORA_DIST_STALL_AT=1:3; rc=$?
  check "NCCL watchdog: exit status $rc is 5" test "$rc" -eq 5
  check "NCCL watchdog: ended $((SECONDS - start)) s after the start (limit 10 + 40)" test $((SECONDS - start)) -le 50
else
  echo "SKIP dp 2 over NCCL and the NCCL watchdog: $gpus GPU here, NCCL needs one per rank"
fi

echo "cuda_runs: $passed passed, $failed failed"
test "$failed" -eq 0
