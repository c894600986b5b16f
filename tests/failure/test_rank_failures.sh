#!/usr/bin/env bash
# A job whose ranks disagree with its config, or one of whose ranks dies or throws, must
# end non-zero within seconds on every rank, naming the rank; no rank may hang.
#   test_rank_failures.sh LORA_DIST_BINARY REPO_DIR WORK_DIR
set -u
bin=$1 repo=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
export OMP_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mpirun=(mpirun --oversubscribe)
passed=0 failed=0
check() {  # check "what" condition...
  local what=$1; shift
  if "$@"; then echo "ok   $what"; passed=$((passed + 1)); else echo "FAIL $what"; failed=$((failed + 1)); fi
}

config() {  # config NAME TP DP STEPS [extra yaml line]
  cat > "$work/$1.yaml" <<YAML
model: {n_layer: 2, n_head: 4, d_model: 64, vocab_size: 256, context: 32}
lora: {r: 4, alpha: 8, targets: [q, v]}
data: {train: $repo/data/demo_train.bin}
train: {steps: $4, batch_size: 8, micro_batch: 2, seq_len: 32, log_every: 1}
parallel: {tp: $2, dp: $3}
output: {dir: $work/out_$1}
${5:-}
YAML
  echo "$work/$1.yaml"
}

# 1. N != tp*dp: every rank says so and exits non-zero at once.
cfg=$(config mismatch 2 2 5)
start=$SECONDS
"${mpirun[@]}" -np 3 "$bin" --yaml "$cfg" > "$work/mismatch.log" 2>&1; rc=$?
check "mismatched N: exit status $rc is non-zero" test "$rc" -ne 0
check "mismatched N: finished in $((SECONDS - start)) s (limit 30)" test $((SECONDS - start)) -le 30
for r in 0 1 2; do
  check "mismatched N: rank $r names tp*dp and the rank count" \
    grep -q "tp\*dp = 2\*2 = 4 ranks, but the job has 3.*\[rank $r\]" "$work/mismatch.log"
done

# 2. Heads not divisible by tp: a config error on every rank.
cfg=$(config heads 3 1 5)
"${mpirun[@]}" -np 3 "$bin" --yaml "$cfg" > "$work/heads.log" 2>&1; rc=$?
check "n_head % tp != 0: exit status $rc is non-zero" test "$rc" -ne 0
check "n_head % tp != 0: every rank reports parallel.tp" test "$(grep -c 'parallel.tp: must divide model.n_head' "$work/heads.log")" -eq 3

# 3. One rank killed mid-step (SIGKILL: no handler runs): the job still ends, non-zero.
cfg=$(config killed 2 2 100000)
"${mpirun[@]}" -np 4 "$bin" --yaml "$cfg" > "$work/killed.log" 2>&1 &
job=$!
for _ in $(seq 300); do grep -q '"type":"train"' "$work/out_killed/metrics.jsonl" 2>/dev/null && break; sleep 0.1; done
victim=$(pgrep -P "$job" -f lora_dist | sed -n 2p)
start=$SECONDS
kill -9 "$victim"
( sleep 60; kill -9 "$job" 2>/dev/null ) & watchdog=$!
wait "$job"; rc=$?
kill "$watchdog" 2>/dev/null
check "rank killed: job exit status $rc is non-zero" test "$rc" -ne 0
check "rank killed: job ended $((SECONDS - start)) s after the kill (limit 30)" test $((SECONDS - start)) -le 30
check "rank killed: no rank left running" test -z "$(pgrep -f "$work/killed.yaml")"

# 4. One rank throws in the middle of a step: the job aborts, naming the rank.
cfg=$(config throws 2 2 100000)
start=$SECONDS
LORA_DIST_FAIL_AT=1:3 timeout 60 "${mpirun[@]}" -np 4 "$bin" --yaml "$cfg" > "$work/throws.log" 2>&1; rc=$?
check "rank throws: job exit status $rc is non-zero (124 would be a hang)" test "$rc" -ne 0 -a "$rc" -ne 124
check "rank throws: ended in $((SECONDS - start)) s (limit 30)" test $((SECONDS - start)) -le 30
check "rank throws: the message names rank 1" grep -q "lora_dist: rank 1: error: .*LORA_DIST_FAIL_AT" "$work/throws.log"

echo "rank_failures: $passed passed, $failed failed"
test "$failed" -eq 0
