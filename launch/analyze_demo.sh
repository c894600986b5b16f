#!/usr/bin/env bash
# Section 7 of the LoRA paper (Figures 3-4, Table 7) on the shipped demo model, as one script
# (README "Analysing adapters"): three adapters on q and v of the demo's seeded 4-layer base
# (d 128), r 4, r 16 and r 16 again from another seed, each trained as the demo trains (300
# steps) on one process, then `lora_dist analyze` on all three at the last layer.
#   bash launch/analyze_demo.sh
# Writes into out/analyze_demo (ANALYZE_OUT=DIR: there instead); LORA_DIST=path picks the binary.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${LORA_DIST:-$repo/build/lora_dist}
work=${ANALYZE_OUT:-$repo/out/analyze_demo}
[[ -x $bin ]] || bash "$repo/launch/build.sh"
rm -rf "$work"
mkdir -p "$work"

# The demo's config with LoRA on q, v only (the paper's choice), rank r, alpha 2r (the demo's
# scale 2), its own seed and output folder, on one rank; data paths made absolute.
train() {  # name r seed
  sed -e "s|^  r: 16 .*|  r: $2|" -e "s|^  alpha: 32 .*|  alpha: $((2 * $2))|" \
      -e "s|^  targets: .*|  targets: [q, v]|" -e "s|^  seed: 42 .*|  seed: $3|" \
      -e "s|^  tp: 2 .*|  tp: 1|" -e "s|^  dp: 2 .*|  dp: 1|" \
      -e "s|\.\./\.\./data/|$repo/data/|" -e "s|^  dir: .*|  dir: $work/$1|" \
      "$repo/launch/examples/demo.yaml" > "$work/$1.yaml"
  printf '\n== training %s (r %s, seed %s)\n' "$1" "$2" "$3"
  "$bin" --yaml "$work/$1.yaml" | grep -E "^(eval|adapter)" | tail -n 2
}
train r4 4 42
train r16 16 42
train r16_seed7 16 7

printf '\n== lora_dist analyze\n'
"$bin" analyze --yaml "$work/r4.yaml" --adapter "$work/r4/adapter.h5" --adapter "$work/r16/adapter.h5" \
    --adapter "$work/r16_seed7/adapter.h5" --pairs all --layer 3 --json "$work/analysis.json" --plots "$work/plots"
