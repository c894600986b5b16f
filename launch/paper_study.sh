#!/usr/bin/env bash
# The LoRA paper's comparisons in small (issue 13, point 4; README "The paper in small"), on
# the base pretrained here (launch/pretrain_base.sh) and one prompt/completion task
# (data/demo_tasks.jsonl, loss on the completion only). Each run is trained on 2 ranks (tp 2):
#   ft            full fine-tuning (lora.enabled: false), every weight trained;
#   qv_r{1,2,4,8,64}      LoRA on q and v (the paper's Table 6);
#   qkvo_r{1,2,4,32}      LoRA on q, k, v and o with the trainable parameters of qv_r{2,4,8,64}
#                         (Table 5: the same budget spread over more matrices);
#   qv_r8_seed2   qv_r8 again from another seed (Figure 4's two seeds);
#   all_r8        LoRA r 8 on every target, the MLP's fc1 and fc2 too (beyond the paper's runs).
# LoRA keeps alpha at 8 for every r, as the paper keeps it at the first r it tried.
# Then: `lora_dist analyze` of qv_r8 against qv_r64 and against qv_r8_seed2 (phi heatmaps,
# amplification), `lora_dist generate` of the base, ft and qv_r8 on the same prompts, and the
# table (launch/paper_study_report.py): eval loss, trainable parameters, step time, peak RSS
# per rank beside `plan`'s prediction, adapter/model and checkpoint sizes.
#   bash launch/paper_study.sh [STEPS]      # steps per run; default 160, the README's (25 min on 2 cores)
# STUDY_OUT=DIR writes there (default out/paper_study); STUDY_BASE=DIR is the HF folder to
# adapt (default out/pretrained_base/hf, pretrained for 500 steps first if absent); LORA_DIST=path picks
# the binary; STUDY_PROMPTS=N asks generate only the first N of its 6 prompts. The CI form (ctest -R paper_study.short) runs 6 steps per run on a 2-step base.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
steps=${1:-160}
bin=${LORA_DIST:-$repo/build/lora_dist}
work=${STUDY_OUT:-$repo/out/paper_study}
base=${STUDY_BASE:-$repo/out/pretrained_base/hf}
[[ -x $bin ]] || bash "$repo/launch/build.sh"
export LORA_DIST=$bin OMP_NUM_THREADS=1
[[ -f $base/config.json ]] || bash "$repo/launch/pretrain_base.sh" 500  # the README's base: 33 min here
base=$(cd "$base" && pwd)  # the run configs live elsewhere
rm -rf "$work"
mkdir -p "$work/runs" "$work/generate"
step() { printf '\n== %s\n' "$*"; }

step "the task: data/demo_tasks.jsonl -> shards with the base's GPT-2 tokenizer"
"$bin" prepare --tokenizer "$base" --input "$repo/data/demo_tasks.jsonl" --val-fraction 0.05 --seq-len 32 \
    --out "$work/train.bin" --out-val "$work/val.bin"

# config NAME LORA-LINE LR SEED: one run's YAML. The val split (100 examples, 1,043 tokens: 32
# rows of 32) is evaluated whole, 2 batches of 16, at step 0 and at the last step.
config() {
  cat > "$work/runs/$1.yaml" <<EOF
model: {init: hf, path: $base}
lora: $2
optim: {lr: $3, warmup_steps: $((steps / 10 + 1)), decay: cosine, weight_decay: 0.0, grad_clip: 1.0}
data: {train: $work/train.bin, val: $work/val.bin}
train: {steps: $steps, batch_size: 16, micro_batch: 8, seq_len: 32, eval_every: 0, eval_batches: 2, log_every: 10, seed: $4, threads: 1}
parallel: {tp: 2, dp: 1}
checkpoint: {every: 0, keep_last: 1}
output: {dir: $work/runs/$1}
EOF
}
# Full fine-tuning moves every weight, so it takes a smaller step than LoRA's factors.
config ft "{enabled: false}" 3.0e-4 1
for r in 1 2 4 8 64; do config "qv_r$r" "{r: $r, alpha: 8, dropout: 0.0, targets: [q, v]}" 2.0e-3 1; done
for r in 1 2 4 32; do config "qkvo_r$r" "{r: $r, alpha: 8, dropout: 0.0, targets: [q, k, v, o]}" 2.0e-3 1; done
config qv_r8_seed2 "{r: 8, alpha: 8, dropout: 0.0, targets: [q, v]}" 2.0e-3 2
config all_r8 "{r: 8, alpha: 8, dropout: 0.0, targets: [q, k, v, o, fc1, fc2]}" 2.0e-3 1
runs=(ft qv_r1 qv_r2 qv_r4 qv_r8 qv_r64 qkvo_r1 qkvo_r2 qkvo_r4 qkvo_r32 qv_r8_seed2 all_r8)

for name in "${runs[@]}"; do
  step "training $name ($steps steps, tp 2)"
  "$bin" plan --yaml "$work/runs/$name.yaml" --json > "$work/runs/$name.plan.json"
  bash "$repo/launch/mpirun.sh" -n 2 "$work/runs/$name.yaml" > "$work/runs/$name.log" 2>&1 ||
    { tail -n 20 "$work/runs/$name.log"; exit 1; }
  grep -E "^(eval|peak RSS|adapter|model)" "$work/runs/$name.log" | tail -n 3
done

step "lora_dist analyze: qv_r8 vs qv_r64 and vs qv_r8_seed2, every layer, q and v"
"$bin" analyze --yaml "$work/runs/qv_r8.yaml" --adapter "$work/runs/qv_r8/adapter.h5" \
    --adapter "$work/runs/qv_r64/adapter.h5" --adapter "$work/runs/qv_r8_seed2/adapter.h5" \
    --pairs 1-2,1-3 --json "$work/analysis.json" --plots "$work/plots" > "$work/analysis.txt"
tail -n 12 "$work/analysis.txt"

step "lora_dist generate: the base, ft and qv_r8 on the same prompts (greedy)"
# ft's trained weights as a base of its own: its config with model.init: file and the shape
# of the base's config.json.
shape=$(/usr/bin/python3 -c 'import json, sys; print("n_layer: %(n_layer)d, n_head: %(n_head)d, d_model: %(n_embd)d, \
vocab_size: %(vocab_size)d, context: %(n_positions)d" % json.load(open(sys.argv[1])))' "$base/config.json")
sed -e "s|^model: .*|model: {init: file, weights_file: $work/runs/ft/model.h5, $shape}|" "$work/runs/ft.yaml" \
    > "$work/runs/ft_model.yaml"
prompts=("upper: river stone" "repeat 2: lamp" "initials: dog apple cat" "vowels: orange" "reverse: moon" "sort: bread")
prompts=("${prompts[@]:0:${STUDY_PROMPTS:-6}}")
for k in "${!prompts[@]}"; do
  p="${prompts[$k]}"$'\n=> '
  printf '%s' "$p" > "$work/generate/prompt_$k.txt"
  for who in base ft qv_r8; do
    case $who in
      base) args=("$work/runs/qv_r8.yaml" -- generate) ;;
      ft) args=("$work/runs/ft_model.yaml" -- generate --tokenizer "$base") ;;
      qv_r8) args=("$work/runs/qv_r8.yaml" -- generate --adapter "$work/runs/qv_r8/adapter.h5") ;;
    esac
    bash "$repo/launch/mpirun.sh" -n 2 "${args[@]}" --prompt-file "$work/generate/prompt_$k.txt" \
        --max-new-tokens 12 > "$work/generate/${who}_$k.txt" 2> "$work/generate/${who}_$k.err"
  done
done

step "the task's tokens that the base never saw in pretraining"
text=$(dirname "$base")/kjv.txt  # what launch/pretrain_base.sh trained on
if [[ -f $text ]]; then
  /usr/bin/python3 "$repo/launch/token_coverage.py" "$base" "$text" "$repo/data/demo_tasks.jsonl" > "$work/coverage.json"
  cat "$work/coverage.json"
fi

step "loss curves: full fine-tuning beside LoRA at r 1, 8 and 64 on q,v and r 8 on every target"
curves=()
for name in ft qv_r1 qv_r8 qv_r64 all_r8; do curves+=("$work/runs/$name/metrics.jsonl" --label "$name"); done
/usr/bin/python3 "$repo/launch/plot_losses.py" "${curves[@]}" --out "$work/loss_curves.png" \
    --title "the paper in small: full fine-tuning vs LoRA"

step "the table"
/usr/bin/python3 "$repo/launch/paper_study_report.py" "$work" "${runs[@]}"
