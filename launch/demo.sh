#!/usr/bin/env bash
# Installs, builds, and fine-tunes the shipped demo model on 4 MPI ranks (tp 2 x dp 2)
# with the data in data/: the eval loss falls from about 6.0 to about 3.0 in 300 steps.
# Ends by drawing the run's loss curves into out/demo/loss.png.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$repo/launch/build.sh"
# A rerun starts afresh: the metrics of an earlier demo would be drawn as a second run.
rm -f "$repo/out/demo/metrics.jsonl"
bash "$repo/launch/mpirun.sh" -n 4 "$repo/launch/examples/demo.yaml"
/usr/bin/python3 "$repo/launch/plot_losses.py" "$repo/out/demo/metrics.jsonl" --label "demo (LoRA r 16, tp 2 x dp 2)" \
  --title "lora_dist demo" --out "$repo/out/demo/loss.png"
