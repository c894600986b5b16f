#!/usr/bin/env bash
# Pretrains the shipped byte-level base, data/base/base.h5, from a fixed seed:
#   bash launch/pretrain_bytes.sh [STEPS]       # default: launch/examples/pretrain_bytes.yaml's 2000
# 1. the King James Bible from Debian's bible-kjv (public domain), verse numbers stripped;
# 2. data/make_base_data.py corpus: the verses interleaved with synthetic prose stating the six
#    string skills of the fine-tuning task over 133 words ("the word lemon backwards is nomel."),
#    byte tokens, every byte scored, the last 1 % held out;
# 3. full fine-tuning (lora.enabled: false) of the demo's shape (4 layers, d 128, vocab 256,
#    context 64) from a seeded init, one rank: out/pretrained_bytes/run/model.h5, the project's
#    sealed base-weights file (model.init: file);
# 4. out/pretrained_bytes/base.json: the fingerprint (every step's training loss, the evals, the
#    model's SHA-256); tests/pretrain/check_base_fingerprint.py reruns the first steps and
#    compares their losses with data/base/base.json.
# SHIP=1 copies model.h5 and the fingerprint to data/base/ (what the repository ships).
# PRETRAIN_OUT=DIR writes there instead of out/pretrained_bytes; LORA_DIST=path picks the binary.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${LORA_DIST:-$repo/build/lora_dist}
out=${PRETRAIN_OUT:-$repo/out/pretrained_bytes}
[[ -x $bin ]] || bash "$repo/launch/build.sh"
command -v bible > /dev/null || bash "$repo/launch/install_deps.sh"
export LORA_DIST=$bin
mkdir -p "$out"
out=$(cd "$out" && pwd)
rm -rf "$out/run"

bible -f Genesis1:1-Revelation22:21 | sed -E 's/^[0-9]?[A-Za-z]+[0-9]+:[0-9]+ //' > "$out/kjv.txt"
/usr/bin/python3 "$repo/data/make_base_data.py" corpus --kjv "$out/kjv.txt" --out-dir "$out"

yaml=$out/pretrain.yaml
sed "s|../../out/pretrained_bytes|$out|g" "$repo/launch/examples/pretrain_bytes.yaml" > "$yaml"
[[ -n ${1:-} ]] && sed -i "s/^  steps: .*/  steps: $1/" "$yaml"
start=$(date +%s)
bash "$repo/launch/mpirun.sh" -n 1 "$yaml"
echo "pretrain_bytes: $(( $(date +%s) - start )) s"
/usr/bin/python3 "$repo/launch/base_fingerprint.py" write "$out/run/metrics.jsonl" "$out/run/model.h5" "$yaml" \
    > "$out/base.json"
if [[ ${SHIP:-0} == 1 ]]; then
  mkdir -p "$repo/data/base"
  cp "$out/run/model.h5" "$repo/data/base/base.h5"
  cp "$out/base.json" "$repo/data/base/base.json"
  echo "pretrain_bytes: shipped data/base/base.h5 and data/base/base.json"
fi
echo "pretrain_bytes: $out/run/model.h5, $out/base.json"
