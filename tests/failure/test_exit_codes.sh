#!/usr/bin/env bash
# The documented exit statuses through the real binary over mpirun (README "Errors and exit
# codes"): every rank leaves with the same status, quickly, with one message that names the
# file, key or tensor; nothing saved is lost.
#   test_exit_codes.sh LORA_DIST_BINARY REPO_DIR WORK_DIR
set -u
bin=$1 repo=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
export OMP_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
mpirun=(timeout 120 mpirun --oversubscribe)
passed=0 failed=0
check() {  # check "what" command...
  local what=$1; shift
  if "$@"; then echo "ok   $what"; passed=$((passed + 1)); else echo "FAIL $what"; failed=$((failed + 1)); fi
}
has() { grep -q -- "$1" "$2"; }
count() { grep -c -- "$1" "$2"; }

config() {  # config NAME STEPS "extra train keys" [extra yaml line]
  cat > "$work/$1.yaml" <<YAML
model: {n_layer: 2, n_head: 4, d_model: 64, vocab_size: 256, context: 32}
lora: {r: 4, alpha: 8, targets: [q, v]}
data: {train: $repo/data/demo_train.bin, val: $repo/data/demo_val.bin}
train: {steps: $2, batch_size: 8, micro_batch: 2, seq_len: 32, log_every: 1$3}
parallel: {tp: 2, dp: 2}
output: {dir: $work/out_$1}
${4:-}
YAML
  echo "$work/$1.yaml"
}

# 1. A non-finite loss or gradient (model.init_std 1e25 overflows the attention scores) with
#    on_nonfinite: stop -> exit 4 on every rank at step 1, the step and a tensor named, no update.
cfg=$(config stop 5 ", eval_every: 0" "checkpoint: {every: 1}")
sed -i 's/context: 32}/context: 32, init_std: 1.0e+25}/' "$cfg"
"${mpirun[@]}" -np 4 "$bin" --yaml "$cfg" > "$work/stop.log" 2>&1; rc=$?
check "non-finite, stop: exit status $rc is 4" test "$rc" -eq 4
check "non-finite, stop: one message naming the step and a gradient tensor" \
  test "$(count 'lora_dist: stopped: step 1: .*first non-finite gradient: h\.[0-9]*\.lora\.[qv]\.[AB]' "$work/stop.log")" -eq 1
check "non-finite, stop: no checkpoint of a NaN step was written" test ! -e "$work/out_stop/checkpoints/step_00000001.h5"

# 2. The same with on_nonfinite: skip -> every step skipped and counted, exit 0, B still exactly 0.
cfg=$(config skip 3 ", on_nonfinite: skip")
sed -i 's/context: 32}/context: 32, init_std: 1.0e+25}/' "$cfg"
"${mpirun[@]}" -np 4 "$bin" --yaml "$cfg" > "$work/skip.log" 2>&1; rc=$?
check "non-finite, skip: exit status $rc is 0" test "$rc" -eq 0
check "non-finite, skip: metrics count 3 skipped steps" has '"skipped":true,"skipped_steps":3,"step":3' "$work/out_skip/metrics.jsonl"
check "non-finite, skip: the adapter was never updated (B == 0, A finite)" /usr/bin/python3 -c "
import h5py, numpy as np, sys
f = h5py.File('$work/out_skip/adapter.h5', 'r')['adapter']
ok = all(np.isfinite(f[k][()]).all() and (not k.endswith('.B') or not f[k][()].any()) for k in f)
sys.exit(0 if ok else 1)"

# 3. A run that cannot fit in the node's memory -> exit 2 on every rank before allocating,
#    naming the keys and the bytes.
cfg=$(config memory 5 "")
start=$SECONDS
LORA_DIST_NODE_MEMORY=1M "${mpirun[@]}" -np 4 "$bin" --yaml "$cfg" > "$work/memory.log" 2>&1; rc=$?
check "memory: exit status $rc is 2" test "$rc" -eq 2
check "memory: ended in $((SECONDS - start)) s (limit 30)" test $((SECONDS - start)) -le 30
check "memory: the message names the keys, the need and the node's memory" \
  has "train.micro_batch, train.seq_len, parallel.tp: this run needs at least .* per rank .*but the node has 1.0 MiB" "$work/memory.log"

# 4. A truncated token shard: exit 3 on every rank, one message naming the file.
head -c 1000 "$repo/data/demo_train.bin" > "$work/truncated.bin"
cfg=$(config shard 5 "")
sed -i "s#train: $repo/data/demo_train.bin#train: $work/truncated.bin#" "$cfg"
"${mpirun[@]}" -np 4 "$bin" --yaml "$cfg" > "$work/shard.log" 2>&1; rc=$?
check "truncated shard: exit status $rc is 3" test "$rc" -eq 3
check "truncated shard: one message naming the file" \
  test "$(count "lora_dist: input error: $work/truncated.bin: truncated" "$work/shard.log")" -eq 1

# 5. Tokens beyond model.vocab_size: exit 3, the shard and the config named.
cfg=$(config vocab 5 "")
sed -i 's/vocab_size: 256/vocab_size: 100/' "$cfg"
"${mpirun[@]}" -np 4 "$bin" --yaml "$cfg" > "$work/vocab.log" 2>&1; rc=$?
check "vocabulary: exit status $rc is 3" test "$rc" -eq 3
check "vocabulary: names the shard and model.vocab_size" has "demo_train.bin: token vocabulary 256 is larger than model.vocab_size 100" "$work/vocab.log"

# 6. The command line: every usage error exits 2 (not CLI11's own 100+ codes), naming the option.
cli() {  # cli "what" "expected text" args...
  local what=$1 text=$2; shift 2
  "$bin" "$@" > "$work/cli.log" 2>&1; local rc=$?
  check "command line, $what: exit status $rc is 2" test "$rc" -eq 2
  check "command line, $what: says '$text'" has "$text" "$work/cli.log"
}
cli "unknown option" "not expected: --bogus" --bogus
cli "bench --steps 0" "--steps: Value 0 not in range" bench --yaml "$cfg" --steps 0
cli "bench --peak nan" "must be a finite number > 0, got nan" bench --yaml "$cfg" --peak-gflops-per-core nan
cli "bench --peak -5" "must be a finite number > 0, got -5" bench --yaml "$cfg" --peak-gflops-per-core -5
cli "bench --json missing folder" "folder $work/missing does not exist" bench --yaml "$cfg" --json "$work/missing/b.json"
cli "--yaml a folder" "$work: is a folder, not a YAML config file" --yaml "$work"
cli "merge without --out" "--out is required" merge --yaml "$cfg" --adapter "$cfg"

# 7. Preemption through launch/mpirun.sh: a TERM to the launcher's whole process group (what a
#    closing terminal or a supervisor sends) still ends in a checkpoint and exit 75, and the
#    eval of the checkpoint's step is in the metrics before it; the rerun resumes and finishes
#    with every step's eval written exactly once.
cfg=$(config preempt 300 ", eval_every: 1, eval_batches: 1" "checkpoint: {every: 1000, resume: auto}")
LORA_DIST=$bin setsid bash "$repo/launch/mpirun.sh" -n 4 "$cfg" > "$work/preempt.log" 2>&1 &
launcher=$!
for _ in $(seq 600); do grep -q '"step":5,' "$work/out_preempt/metrics.jsonl" 2>/dev/null && break; sleep 0.1; done
kill -TERM -- "-$launcher"
wait "$launcher"; rc=$?
check "mpirun.sh, TERM to the process group: exit status $rc is 75" test "$rc" -eq 75
ckpt=$(ls "$work/out_preempt/checkpoints/" 2>/dev/null | tail -1)
check "mpirun.sh, TERM: a checkpoint was written ($ckpt)" test -n "$ckpt"
LORA_DIST=$bin bash "$repo/launch/mpirun.sh" -n 4 "$cfg" > "$work/resume.log" 2>&1; rc=$?
check "mpirun.sh, rerun: exit status $rc is 0" test "$rc" -eq 0
check "mpirun.sh, rerun: resumed from the checkpoint" has "resumed from .*$ckpt" "$work/resume.log"
check "evals: steps 0..300 each have exactly one eval record (none lost to the preemption)" /usr/bin/python3 -c "
import json, sys, collections
steps = collections.Counter(r['step'] for r in map(json.loads, open('$work/out_preempt/metrics.jsonl')) if r['type'] == 'eval')
sys.exit(0 if sorted(steps) == list(range(301)) and set(steps.values()) == {1} else 1)"

# 8. A rank that stops making progress mid-step (LORA_DIST_STALL_AT: what a rank behind a lost
#    link looks like to its peers): the watchdog of every other rank names the collective,
#    group and step, and the whole job ends with status 5 within timeout_s + 30 s, no process left.
cfg=$(config stall 100000 "" "")
sed -i 's/parallel: {tp: 2, dp: 2}/parallel: {tp: 2, dp: 2, timeout_s: 5}/' "$cfg"
start=$SECONDS
LORA_DIST_STALL_AT=3:20 "${mpirun[@]}" -np 4 "$bin" --yaml "$cfg" > "$work/stall.log" 2>&1; rc=$?
check "watchdog: exit status $rc is 5" test "$rc" -eq 5
check "watchdog: the job ended $((SECONDS - start)) s after it started (limit 5 + 30)" test $((SECONDS - start)) -le 35
check "watchdog: a rank names the collective, group, peers and step" \
  has "watchdog: all-reduce (sum) of [0-9]* bytes over the [a-z]* group (world ranks [0-9, ]*) at step 21 made no progress for 5 s" "$work/stall.log"
check "watchdog: no rank left running" test -z "$(pgrep -f "$work/stall.yaml")"

echo "exit_codes: $passed passed, $failed failed"
test "$failed" -eq 0
