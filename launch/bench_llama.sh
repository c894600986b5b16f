#!/usr/bin/env bash
# The Llama block's speed beside GPT's and beside PyTorch, interleaved in one session (this
# machine's speed moves between minutes; only same-run ratios compare): per round,
#   PyTorch Llama   launch/torch_llama_bench.py: the ~125M Llama shape, LoRA q,v r 8, fp32
#   lora_dist Llama lora_dist bench on launch/examples/llama_125m_bench.yaml (the same shape)
#   lora_dist GPT-2 lora_dist bench on launch/examples/gpt2_124m_bench.yaml
# each B 4 x T 256, one process with 2 threads. Prints each round and the medians' ratios.
#   launch/bench_llama.sh [ROUNDS]            -> a table; logs in out/bench_llama/
#   BIN=path/to/lora_dist (default build/lora_dist)
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
rounds=${1:-2}
bin=${BIN:-$repo/build/lora_dist}
log=$repo/out/bench_llama
mkdir -p "$log"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# As bench_compare.sh: PyTorch gets ATen's AVX-512 kernels only where the CPU has them, and
# tcmalloc, the anchors' best honest configuration; lora_dist runs with the environment as it comes.
torch_env=(ATEN_CPU_CAPABILITY=avx2)
grep -q avx512f /proc/cpuinfo && torch_env=(ATEN_CPU_CAPABILITY=avx512 "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-SkylakeX}")

torch_run() {
  env "${torch_env[@]}" LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 \
    /usr/bin/python3 "$repo/launch/torch_llama_bench.py" --threads 2 --steps 5 --warmup 2 |
    tee -a "$log/torch.log" | sed -n 's/^JSON //p' | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["tokens_per_s"])'
}
ours_run() {  # ours_run YAML
  OMP_NUM_THREADS=2 mpirun --bind-to none -np 1 "$bin" bench --yaml "$1" --steps 5 --warmup 2 \
    --json "$log/lora_dist.jsonl" | tee -a "$log/lora_dist.log" | sed -n 's/^tokens\/s: //p'
}

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)
echo "CPU: $cpu, $(nproc) cores; $(date -u +%Y-%m-%d)"
printf '%-6s %16s %16s %16s\n' round "PyTorch Llama" "lora_dist Llama" "lora_dist GPT-2"
: > "$log/results.tsv"
for round in $(seq "$rounds"); do
  t=$(torch_run)
  l=$(ours_run "$repo/launch/examples/llama_125m_bench.yaml")
  g=$(ours_run "$repo/launch/examples/gpt2_124m_bench.yaml")
  printf '%s\t%s\t%s\t%s\n' "$round" "$t" "$l" "$g" >> "$log/results.tsv"
  printf '%-6s %16.1f %16.1f %16.1f   tokens/s\n' "$round" "$t" "$l" "$g"
done
/usr/bin/python3 - "$log/results.tsv" <<'PY'
import statistics, sys
rows = [list(map(float, l.split()[1:])) for l in open(sys.argv[1]) if l.strip()]
t, l, g = (statistics.median(c) for c in zip(*rows))
print(f"median tokens/s: PyTorch Llama {t:.1f}, lora_dist Llama {l:.1f}, lora_dist GPT-2 {g:.1f}")
print(f"lora_dist Llama / PyTorch Llama = {l / t:.2f}x; lora_dist Llama / lora_dist GPT-2 = {l / g:.2f}")
PY
