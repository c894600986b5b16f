#!/usr/bin/env bash
# Pretrains the small GPT-2-shaped base of the paper study (issue 13, point 2) on this machine
# and saves it as a Hugging Face GPT-2 folder, since no model can be downloaded here.
#   bash launch/pretrain_base.sh [STEPS]      # default: launch/examples/pretrain_base.yaml's 150
# 1. the King James Bible from Debian's bible-kjv (public domain), verse numbers stripped;
# 2. `lora_dist prepare` with GPT-2's tokenizer (tests/data/gpt2_bpe): plain text, every token
#    scored, 2 % held out;
# 3. full fine-tuning (lora.enabled: false) from GPT-2's seeded init: out/pretrained_base/run;
# 4. `lora_dist export --merged` of its model.h5, plus the tokenizer files: out/pretrained_base/hf,
#    a folder for model.init: hf (and GPT2LMHeadModel.from_pretrained).
# PRETRAIN_OUT=DIR writes there instead; LORA_DIST=path picks the binary.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${LORA_DIST:-$repo/build/lora_dist}
out=${PRETRAIN_OUT:-$repo/out/pretrained_base}
[[ -x $bin ]] || bash "$repo/launch/build.sh"
command -v bible > /dev/null || bash "$repo/launch/install_deps.sh"
export LORA_DIST=$bin
mkdir -p "$out"
rm -rf "$out/run" "$out/hf"
tok=$out/gpt2_tokenizer
mkdir -p "$tok"
cp "$repo/tests/data/gpt2_bpe/encoder.json" "$tok/vocab.json"
cp "$repo/tests/data/gpt2_bpe/vocab.bpe" "$tok/merges.txt"

bible -f Genesis1:1-Revelation22:21 | sed -E 's/^[0-9]?[A-Za-z]+[0-9]+:[0-9]+ //' > "$out/kjv.txt"
"$bin" prepare --tokenizer "$tok" --input "$out/kjv.txt" --val-fraction 0.02 --out "$out/train.bin" \
    --out-val "$out/val.bin"

yaml=$out/pretrain.yaml
sed "s|../../out/pretrained_base|$out|g" "$repo/launch/examples/pretrain_base.yaml" > "$yaml"
[[ -n ${1:-} ]] && sed -i "s/^  steps: .*/  steps: $1/" "$yaml"
bash "$repo/launch/mpirun.sh" -n 1 "$yaml"

# The trained weights as the base of a config, written out as an HF GPT-2 folder.
sed -e "s|^  init: seed|  init: file\n  weights_file: $out/run/model.h5|" "$yaml" > "$out/export.yaml"
"$bin" export --yaml "$out/export.yaml" --merged "$out/hf"
cp "$tok/vocab.json" "$tok/merges.txt" "$out/hf/"
echo "pretrain_base: $out/hf: $(ls "$out/hf" | tr '\n' ' ')"
