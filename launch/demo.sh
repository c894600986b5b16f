#!/usr/bin/env bash
# Installs, builds, and fine-tunes LoRA on the shipped pretrained base, data/base/base.h5 (frozen;
# a byte-level GPT-2 pretrained here by launch/pretrain_bytes.sh), on 4 MPI ranks (tp 2 x dp 2)
# with the task in data/: six string tasks in an instruction format the base has never read
# ("reverse: lemon\n=> nomel"), on words the held-out split never uses.
# Ends by drawing the loss curves into out/demo_pretrained/loss.png, then asks `lora_dist
# generate --eval` for the greedy answers of the base and of the adapter to the 240 held-out
# prompts and prints a few of each task with the exact-match accuracy before and after.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$repo/launch/build.sh"
yaml=$repo/launch/examples/demo_pretrained.yaml
out=$repo/out/demo_pretrained
# A rerun starts afresh: the metrics of an earlier demo would be drawn as a second run.
mkdir -p "$out"
rm -f "$out/metrics.jsonl"
bash "$repo/launch/mpirun.sh" -n 4 "$yaml"
/usr/bin/python3 "$repo/launch/plot_losses.py" "$out/metrics.jsonl" --label "LoRA r 8 on the pretrained base, tp 2 x dp 2" \
  --title "lora_dist demo" --out "$out/loss.png"
for who in base adapter; do
  args=()
  [[ $who == adapter ]] && args=(--adapter "$out/adapter.h5")
  bash "$repo/launch/mpirun.sh" -n 4 "$yaml" -- generate "${args[@]}" --tokenizer bytes \
      --eval "$repo/data/tasks_heldout.jsonl" --eval-out "$out/answers_$who.jsonl" --max-new-tokens 24 \
      > "$out/accuracy_$who.txt"
done
echo
/usr/bin/python3 "$repo/launch/demo_report.py" "$out/answers_base.jsonl" "$out/answers_adapter.jsonl"
