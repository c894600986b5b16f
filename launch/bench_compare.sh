#!/usr/bin/env bash
# lora_dist bench next to the PyTorch anchor (../shared/anchors/torch_lora_bench.py) on the
# same GPT-2 124M LoRA step, interleaved in one session (this machine's speed moves: the
# anchors README explains why), and the ratio of each pair. Also dp=2 vs dp=1.
#   launch/bench_compare.sh [ROUNDS] [ANCHORS_DIR]     -> prints a table; logs in out/bench/
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
rounds=${1:-2}
anchors=${2:-$repo/../shared/anchors}
bin=$repo/build/lora_dist
log=$repo/out/bench
mkdir -p "$log"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# OpenBLAS 0.3.21 does not know every new CPU and then falls back to SSE3 kernels; give
# PyTorch (which uses the same OpenBLAS) the AVX-512 ones that lora_dist picks for itself.
if [[ -z ${OPENBLAS_CORETYPE:-} ]] && grep -q avx512f /proc/cpuinfo; then export OPENBLAS_CORETYPE=SkylakeX; fi
gcc -O2 "$anchors/core_pingpong.c" -o "$log/core_pingpong" -lpthread

yaml=$repo/launch/examples/gpt2_124m_bench.yaml
dp2=$log/gpt2_124m_dp2.yaml dp1b8=$log/gpt2_124m_dp1_b8.yaml
sed -e 's/batch_size: 4/batch_size: 8/' -e "s#../../data/#$repo/data/#" "$yaml" > "$dp1b8"
sed -e 's/dp: 1/dp: 2/' "$dp1b8" > "$dp2"

torch_run() {  # the anchors' best honest PyTorch config (tcmalloc, ATen AVX-512)
  (cd "$log" && LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 ATEN_CPU_CAPABILITY=avx512 \
    /usr/bin/python3 "$anchors/torch_lora_bench.py" --threads 2 --steps 5 --warmup 2) |
    sed -n 's/^JSON //p'
}
ours_run() {  # ours_run RANKS THREADS YAML
  OMP_NUM_THREADS=$2 mpirun --bind-to none -np "$1" "$bin" bench --yaml "$3" --steps 5 --warmup 2 \
    --json "$log/lora_dist.jsonl" | tee -a "$log/lora_dist.log" | sed -n 's/^tokens\/s: //p'
}

: > "$log/results.tsv"
for round in $(seq "$rounds"); do
  ping_before=$("$log/core_pingpong" | awk '{print $2}')
  t=$(torch_run | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["tokens_per_s"])')
  o=$(ours_run 1 2 "$yaml")
  d1=$(ours_run 1 2 "$dp1b8")
  d2=$(ours_run 2 1 "$dp2")
  ping_after=$("$log/core_pingpong" | awk '{print $2}')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$t" "$o" "$d1" "$d2" "$ping_before" "$ping_after" >> "$log/results.tsv"
done

/usr/bin/python3 - "$log/results.tsv" <<'PY'
import sys
rows = [l.split("\t") for l in open(sys.argv[1]) if l.strip()]
print("round | PyTorch tok/s | lora_dist tok/s | ratio | batch 8: dp=1 x 2 threads | dp=2 x 1 thread | dp2/dp1 | ping-pong ns before/after")
print("---|---:|---:|---:|---:|---:|---:|---")
for r, t, o, d1, d2, pb, pa in rows:
    t, o, d1, d2 = map(float, (t, o, d1, d2))
    print(f"{r} | {t:.1f} | {o:.1f} | {o / t:.2f}x | {d1:.1f} | {d2:.1f} | {d2 / d1:.2f}x | {pb}/{pa.strip()}")
PY
