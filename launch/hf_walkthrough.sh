#!/usr/bin/env bash
# From a Hugging Face GPT-2 folder and a JSONL file of prompt/completion examples to a PEFT
# adapter, a merged HF model and generated text, on 2 MPI ranks (tp 2): the README's
# walk-through ("From a Hugging Face GPT-2 folder"), as one script.
#   bash launch/hf_walkthrough.sh [124m|small]      # the folder's shape; default 124m
# Writes into out/hf_gpt2 (HF_WALK_OUT=DIR: there instead); LORA_DIST=path picks the binary.
# This machine cannot download GPT-2, so step 1 writes a random folder of GPT-2's shape with
# GPT-2's real tokenizer files; with a real one, point model.path at it and skip step 1.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
shape=${1:-124m}
bin=${LORA_DIST:-$repo/build/lora_dist}
work=${HF_WALK_OUT:-$repo/out/hf_gpt2}
[[ -x $bin ]] || bash "$repo/launch/build.sh"
export LORA_DIST=$bin
rm -rf "$work"
mkdir -p "$work"
# The example config with its paths pointing into $work (the same file when $work is out/hf_gpt2).
yaml=$work/run.yaml
sed "s|../../out/hf_gpt2|$work|g" "$repo/launch/examples/hf_gpt2_lora.yaml" > "$yaml"
step() { printf '\n== %s\n' "$*"; }

step "1. an HF GPT-2 folder: config.json, model.safetensors, vocab.json, merges.txt"
/usr/bin/python3 "$repo/tests/hf/gpt2_folder.py" "$work/gpt2" --shape "$shape" --tokenizer "$repo/tests/data/gpt2_bpe"

step "2. JSONL -> token shards (loss on the completion and <|endoftext|>)"
"$bin" prepare --tokenizer "$work/gpt2" --input "$repo/data/demo_tasks.jsonl" --val-fraction 0.05 \
    --out "$work/train.bin" --out-val "$work/val.bin" --seq-len 32

step "3. LoRA training on 2 ranks (tp 2)"
bash "$repo/launch/mpirun.sh" -n 2 "$yaml"

step "4. export: a PEFT adapter and a merged HF folder"
"$bin" export --yaml "$yaml" --adapter "$work/run/adapter.h5" --peft "$work/peft" --merged "$work/merged"

step "5. generate with the adapter (tp 2), then with the merged folder alone"
prompt=$'reverse: lemon\n=> '
bash "$repo/launch/mpirun.sh" -n 2 "$yaml" -- generate --adapter "$work/run/adapter.h5" --prompt "$prompt" \
    --max-new-tokens 16
sed "s|$work/gpt2 |$work/merged |" "$yaml" > "$work/merged.yaml"
bash "$repo/launch/mpirun.sh" -n 2 "$work/merged.yaml" -- generate --tokenizer "$work/gpt2" --prompt "$prompt" \
    --max-new-tokens 16
