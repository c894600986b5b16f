#!/usr/bin/env bash
# Full fine-tuning beside LoRA on GPT-2 124M (B 4 x T 256, one rank, 2 threads), lora_dist and
# the PyTorch anchor (../shared/anchors/torch_lora_bench.py, LoRA and --full) interleaved, for
# issue 13's performance figures: tokens/s and peak RSS of each, and the ratios.
#   bash launch/bench_full_vs_lora.sh [rounds=2] [anchors=../shared/anchors]
# Writes out/bench_full/{lora_dist,torch}.log and prints a markdown table.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
rounds=${1:-2}
anchors=${2:-$repo/../shared/anchors}
bin=${BIN:-$repo/build/lora_dist}
log=$repo/out/bench_full
mkdir -p "$log"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
torch_env=(ATEN_CPU_CAPABILITY=avx2)
if grep -q avx512f /proc/cpuinfo; then torch_env=(ATEN_CPU_CAPABILITY=avx512); fi
lora=$log/gpt2_124m_lora.yaml full=$log/gpt2_124m_full.yaml
sed -e "s#../../data/#$repo/data/#" -e "s#../../out/#$repo/out/#" "$repo/launch/examples/gpt2_124m_bench.yaml" > "$lora"
sed -e 's/^  targets: \[q, v\]/  targets: [q, v]\n  enabled: false/' "$lora" > "$full"

torch_run() {  # $1: "" or --full; prints "tok/s rss_mib"
  (cd "$log" && env "${torch_env[@]}" LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 \
    /usr/bin/python3 "$anchors/torch_lora_bench.py" --threads 2 --steps 5 --warmup 2 ${1:-}) | tee -a "$log/torch.log" |
    sed -n 's/^JSON //p' | /usr/bin/python3 -c 'import json,sys; j=json.load(sys.stdin); print(j["tokens_per_s"], j.get("peak_rss_mib", "nan"))'
}
ours_run() {  # $1: yaml; prints "tok/s rss_mib"
  OMP_NUM_THREADS=2 mpirun --bind-to none -np 1 "$bin" bench --yaml "$1" --steps 5 --warmup 2 | tee -a "$log/lora_dist.log" |
    awk '/^tokens\/s:/ {t=$2} /^peak RSS per rank:/ {r=$5} END {print t, r}'
}

echo "round | lora_dist LoRA tok/s (RSS MiB) | lora_dist full | PyTorch LoRA | PyTorch full | ours LoRA/full | ours full / PyTorch full | ours LoRA / PyTorch LoRA"
echo "---|---:|---:|---:|---:|---:|---:|---:"
for round in $(seq "$rounds"); do
  read -r ol olr < <(ours_run "$lora")
  read -r of ofr < <(ours_run "$full")
  read -r tl tlr < <(torch_run)
  read -r tf tfr < <(torch_run --full)
  /usr/bin/python3 -c "
ol,olr,of,ofr,tl,tlr,tf,tfr=map(float,'$ol $olr $of $ofr $tl $tlr $tf $tfr'.split())
print(f'$round | {ol:.1f} ({olr:.0f}) | {of:.1f} ({ofr:.0f}) | {tl:.1f} ({tlr:.0f}) | {tf:.1f} ({tfr:.0f}) | {ol/of:.2f}x | {of/tf:.2f}x | {ol/tl:.2f}x')"
done
