#!/usr/bin/env bash
# Issue 24's quality check: LoRA on an NF4 base against the same LoRA on the fp32 base, on the
# paper study's pretrained base (launch/pretrain_base.sh) and task (data/demo_tasks.jsonl, loss
# on the completion only), as QLoRA compares 4-bit with 16-bit LoRA. Four runs on 2 ranks
# (tp 2), the same seed, data and schedule:
#   fp32_qv, nf4_qv     LoRA r 8 on q and v (the paper's setting)
#   fp32_all, nf4_all   LoRA r 8 on every linear layer (QLoRA's setting)
# and a table of the held-out loss of the base (step 0) and after training, nf4 / fp32 for
# each (tests/nf4/quality_report.py; also written as quality.json).
#   bash launch/nf4_quality.sh [STEPS]      # default 160, the paper study's
# NF4_OUT=DIR writes there (default out/nf4_quality); STUDY_BASE=DIR is the HF base (default
# out/pretrained_base/hf, pretrained for 500 steps first if absent); LORA_DIST=path the binary.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
steps=${1:-160}
bin=${LORA_DIST:-$repo/build/lora_dist}
work=${NF4_OUT:-$repo/out/nf4_quality}
base=${STUDY_BASE:-$repo/out/pretrained_base/hf}
[[ -x $bin ]] || bash "$repo/launch/build.sh"
export LORA_DIST=$bin OMP_NUM_THREADS=1
[[ -f $base/config.json ]] || bash "$repo/launch/pretrain_base.sh" 500
base=$(cd "$base" && pwd)
rm -rf "$work"
mkdir -p "$work/runs"
"$bin" prepare --tokenizer "$base" --input "$repo/data/demo_tasks.jsonl" --val-fraction 0.05 --seq-len 32 \
    --out "$work/train.bin" --out-val "$work/val.bin" > "$work/prepare.log"
# config NAME DTYPE TARGETS: one run (the paper study's LoRA schedule; eval at step 0 and at the end).
config() {
  cat > "$work/runs/$1.yaml" <<YAML
model: {init: hf, path: $base, dtype: $2}
lora: {r: 8, alpha: 8, dropout: 0.0, targets: $3}
optim: {lr: 2.0e-3, warmup_steps: $((steps / 10 + 1)), decay: cosine, weight_decay: 0.0, grad_clip: 1.0}
data: {train: $work/train.bin, val: $work/val.bin}
train: {steps: $steps, batch_size: 16, micro_batch: 8, seq_len: 32, eval_every: 0, eval_batches: 2, log_every: 10, seed: 1, threads: 1}
parallel: {tp: 2, dp: 1}
checkpoint: {every: 0, keep_last: 1}
output: {dir: $work/runs/$1}
YAML
}
for dtype in fp32 nf4; do
  config "${dtype}_qv" "$dtype" "[q, v]"
  config "${dtype}_all" "$dtype" "[q, k, v, o, fc1, fc2]"
done
for name in fp32_qv nf4_qv fp32_all nf4_all; do
  printf '== %s (%s steps, tp 2)\n' "$name" "$steps"
  bash "$repo/launch/mpirun.sh" -n 2 "$work/runs/$name.yaml" > "$work/runs/$name.log" 2>&1 ||
    { tail -n 20 "$work/runs/$name.log"; exit 1; }
  grep -E "^(model|eval)" "$work/runs/$name.log" | head -n 1
  grep -E "^eval" "$work/runs/$name.log" | tail -n 1
done
/usr/bin/python3 "$repo/tests/nf4/quality_report.py" "$work" | tee "$work/quality.txt"
