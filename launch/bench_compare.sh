#!/usr/bin/env bash
# lora_dist bench next to the PyTorch anchor (../shared/anchors/torch_lora_bench.py) on the
# same GPT-2 124M LoRA step, interleaved in one session (this machine's speed moves: the
# anchors README explains why), and the ratio of each pair: PyTorch fp32, PyTorch bf16 autocast
# (the anchor's --bf16), lora_dist model.dtype fp32, bf16 and nf4, and lora_dist fp32 on the demo
# task's masked data (bench --data data/demo_train.bin: the LM head on the scored quarter of the
# positions), each lora_dist run with its LM head's share of the step and the share inside GEMM
# calls (bench's per-op table). DP=1 adds dp=2 vs dp=1 (batch 8).
#   launch/bench_compare.sh [ROUNDS] [ANCHORS_DIR]     -> prints a table; logs in out/bench/
#   BIN=path/to/lora_dist (default build/lora_dist)
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
rounds=${1:-2}
anchors=${2:-$repo/../shared/anchors}
bin=${BIN:-$repo/build/lora_dist}
with_dp=${DP:-0}
# PyTorch bf16 autocast needs bf16 units: on a CPU without avx512_bf16 / amx_bf16, oneDNN 2.6
# (inside PyTorch 1.13) runs its reference bf16 loop: one warm-up step of this benchmark took
# 352 s on a Zen 3 (2026-12-01). It is skipped there unless TORCH_BF16=1.
torch_bf16=${TORCH_BF16:-auto}
if [[ $torch_bf16 == auto ]]; then
  if grep -qE 'avx512_bf16|amx_bf16' /proc/cpuinfo; then torch_bf16=1; else torch_bf16=0; fi
fi
log=$repo/out/bench
mkdir -p "$log"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# OpenBLAS 0.3.21 does not know every new CPU and then falls back to SSE3 kernels; give
# PyTorch (which uses the same OpenBLAS) the AVX-512 ones. lora_dist runs with the
# environment as it comes (its frozen-weight GEMMs are oneDNN's, ISA picked at run time).
# ATen's AVX-512 kernels only where the CPU has them (an AVX2 CPU dies with SIGILL).
torch_env=(ATEN_CPU_CAPABILITY=avx2)
if grep -q avx512f /proc/cpuinfo; then
  torch_env=(ATEN_CPU_CAPABILITY=avx512 "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-SkylakeX}")
fi
gcc -O2 "$anchors/core_pingpong.c" -o "$log/core_pingpong" -lpthread

yaml=$repo/launch/examples/gpt2_124m_bench.yaml
dp2=$log/gpt2_124m_dp2.yaml dp1b8=$log/gpt2_124m_dp1_b8.yaml
sed -e 's/batch_size: 4/batch_size: 8/' -e "s#../../data/#$repo/data/#" "$yaml" > "$dp1b8"
sed -e 's/dp: 1/dp: 2/' "$dp1b8" > "$dp2"
bf16=$log/gpt2_124m_bf16.yaml
sed -e 's/^  init: seed/  init: seed\n  dtype: bf16/' -e "s#../../data/#$repo/data/#" "$yaml" > "$bf16"
nf4=$log/gpt2_124m_nf4.yaml
sed -e 's/^  init: seed/  init: seed\n  dtype: nf4/' -e "s#../../data/#$repo/data/#" "$yaml" > "$nf4"

torch_run() {  # the anchors' best honest PyTorch config (tcmalloc, ATen AVX-512 where the CPU has it); $1: extra flag (--bf16)
  (cd "$log" && env "${torch_env[@]}" LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 \
    /usr/bin/python3 "$anchors/torch_lora_bench.py" --threads 2 --steps 5 --warmup 2 ${1:-}) |
    tee -a "$log/torch.log" | sed -n 's/^JSON //p'
}
ours_run() {  # ours_run RANKS THREADS YAML [bench flags...] -> "tokens/s lm-head-share gemm-share" of the run
  local ranks=$1 threads=$2 y=$3
  shift 3
  OMP_NUM_THREADS=$threads mpirun --bind-to none -np "$ranks" "$bin" bench --yaml "$y" --steps 5 --warmup 2 \
    --json "$log/lora_dist.jsonl" "$@" >> "$log/lora_dist.log"
  tail -n 1 "$log/lora_dist.jsonl" | /usr/bin/python3 -c 'import json,sys; r=json.load(sys.stdin); \
    print(r["tokens_per_s"], r["lm_head_ms"] / r["step_ms_mean"], r["gemm_ms"] / r["step_ms_mean"])'
}

: > "$log/results.tsv"
for round in $(seq "$rounds"); do
  ping_before=$("$log/core_pingpong" | awk '{print $2}')
  t=$(torch_run | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["tokens_per_s"])')
  read -r o o_head o_gemm < <(ours_run 1 2 "$yaml")
  tb=nan
  if [[ $torch_bf16 == 1 ]]; then
    tb=$(torch_run --bf16 | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["tokens_per_s"])')
  fi
  read -r ob _ _ < <(ours_run 1 2 "$bf16")
  read -r on _ _ < <(ours_run 1 2 "$nf4")
  # The demo task's masked data (the paper's objective: a quarter of the positions scored): the
  # LM head runs on the scored rows only. The anchor's step costs the same on any tokens.
  read -r om om_head om_gemm < <(ours_run 1 2 "$yaml" --data "$repo/data/demo_train.bin")
  d1=0 d2=0
  if [[ $with_dp == 1 ]]; then
    read -r d1 _ _ < <(ours_run 1 2 "$dp1b8")
    read -r d2 _ _ < <(ours_run 2 1 "$dp2")
  fi
  ping_after=$("$log/core_pingpong" | awk '{print $2}')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$t" "$tb" "$o" "$ob" "$on" "$d1" "$d2" \
    "$ping_before" "$ping_after" "$o_head" "$o_gemm" "$om" "$om_head" "$om_gemm" >> "$log/results.tsv"
done

/usr/bin/python3 - "$log/results.tsv" <<'PY'
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
print("round | PyTorch fp32 tok/s | PyTorch bf16 autocast | lora_dist fp32 | lora_dist bf16 | lora_dist nf4 | fp32 ratio "
      "| bf16 ratio | lora_dist bf16 / PyTorch fp32 | lora_dist bf16 / fp32 | lora_dist nf4 / fp32 | batch 8: dp=1 x 2 thr "
      "| dp=2 x 1 thr | ping-pong ns before/after")
print("---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---")
for r, t, tb, o, ob, on, d1, d2, pb, pa, *_ in rows:
    t, tb, o, ob, on, d1, d2 = map(float, (t, tb, o, ob, on, d1, d2))
    dp = f"{d1:.1f} | {d2:.1f}" if d1 > 0 else "- | -"
    tbs, rb = ("n/a (no bf16 units)", "-") if tb != tb else (f"{tb:.1f}", f"{ob / tb:.2f}x")
    print(f"{r} | {t:.1f} | {tbs} | {o:.1f} | {ob:.1f} | {on:.1f} | {o / t:.2f}x | {rb} | {ob / t:.2f}x | {ob / o:.3f}x "
          f"| {on / o:.2f}x | {dp} | {pb}/{pa.strip()}")
print()
print("round | lora_dist fp32, random tokens: LM head share | in GEMM calls | demo masked data: tok/s | LM head share "
      "| in GEMM calls | masked tok/s / PyTorch fp32")
print("---|---:|---:|---:|---:|---:|---:")
for r, t, tb, o, ob, on, d1, d2, pb, pa, oh, og, om, omh, omg in rows:
    t, oh, og, om, omh, omg = map(float, (t, oh, og, om, omh, omg))
    print(f"{r} | {100 * oh:.1f} % | {100 * og:.1f} % | {om:.1f} | {100 * omh:.1f} % | {100 * omg:.1f} % | {om / t:.2f}x")
PY
