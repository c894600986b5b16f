#!/usr/bin/env bash
# The real-Slurm test (issue 4): a private single-node Slurm (munged, slurmctld, slurmd) on
# localhost with all state under a temp dir, the project's own train_single_node.sbatch
# submitted with 2 tasks, a USR1 delivered once a checkpoint exists, and then:
#   - the batch script forwarded it, the ranks checkpointed and exited 75, the job requeued
#     itself (Restarts=1);
#   - the second run (SLURM_RESTART_COUNT=1) resumed from that checkpoint: the trainer says
#     so in the job log, and the train steps in metrics.jsonl go on from the checkpoint step
#     (first run 1..S, second run S+1..end), not from 1;
#   - the job ends COMPLETED with exit code 0.
# Fails (never skips) when Slurm or munge is missing: launch/install_deps.sh installs them.
# Its own waits add up to ~215 s, under ctest's TIMEOUT of 240 s, so its EXIT trap always gets
# to stop the daemons (a ctest timeout kills the script without running the trap).
#
#   LORA_DIST=build/lora_dist tests/slurm/test_slurm_requeue.sh
# Env: LORA_DIST (required), LORA_SLURM_TEST_STEPS (default 4000), LORA_SLURM_LAUNCHER
# (srun, the default, or mpirun: the job script's LAUNCHER), LORA_SLURM_KEEP=1 keeps the temp
# dir even on success.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
t_start=$SECONDS
say() { printf '[%3ds] %s\n' $((SECONDS - t_start)) "$*"; }
fail() { say "FAIL: $*"; exit 1; }
trap 'say "FAIL: unexpected error (status $?) at line $LINENO: $BASH_COMMAND"' ERR

bin=${LORA_DIST:-}
[[ -n $bin && -x $bin ]] || fail "set LORA_DIST to the lora_dist binary (got '${bin}')"
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
for c in munged mungekey slurmctld slurmd sbatch scontrol scancel sinfo squeue srun; do
  command -v "$c" >/dev/null || fail "'$c' not found: this test needs Debian's slurm-wlm and munge (run launch/install_deps.sh)"
done

STATE=$(mktemp -d /tmp/lora_slurm_test.XXXXXX)
WORK=$STATE/job
OUT=$WORK/out
mkdir -p "$WORK/logs"
ok=0
job=""
cleanup() {
  set +e
  if [[ $ok != 1 ]]; then
    if [[ -n $job ]]; then
      say "scontrol show job $job:"; scontrol show job "$job" 2>&1 | sed 's/^/    /'
    fi
    for f in "$WORK"/logs/*.out; do [[ -f $f ]] && { say "---- $f"; sed 's/^/    /' "$f"; }; done
    for f in "$STATE"/log/slurmctld.log "$STATE"/log/slurmd.log; do
      [[ -f $f ]] && { say "---- tail of $f"; tail -n 25 "$f" | sed 's/^/    /'; }
    done
  fi
  "$repo/launch/slurm_localhost.sh" down "$STATE" || true
  if [[ $ok == 1 && ${LORA_SLURM_KEEP:-0} != 1 ]]; then rm -rf -- "$STATE"; else say "state kept in $STATE"; fi
}
trap cleanup EXIT

# --- the cluster ----------------------------------------------------------------------------
say "bringing up Slurm under $STATE"
eval "$("$repo/launch/slurm_localhost.sh" up "$STATE" --cpus 4)"
[[ -n ${SLURM_CONF:-} ]] || fail "slurm_localhost.sh up printed no SLURM_CONF"
sinfo | sed 's/^/    /'

# --- the run: tiny model, 2 data-parallel ranks, a checkpoint every 100 steps ----------------
# ~2.5 ms a step on an idle 2-core VM: 4000 steps are ~10 s of training in all (30-60 s when
# the machine is busy with other work).
steps=${LORA_SLURM_TEST_STEPS:-4000}
cat >"$WORK/run.yaml" <<EOF
model: {n_layer: 2, n_head: 4, d_model: 64, vocab_size: 256, context: 32, init: seed, init_seed: 7, init_std: 0.1}
lora: {r: 4, alpha: 8, targets: [q, v]}
optim: {lr: 2.0e-3, warmup_steps: 10, decay: cosine}
data: {train: $repo/data/demo_train.bin, val: $repo/data/demo_val.bin}
train: {steps: $steps, batch_size: 4, micro_batch: 2, seq_len: 32, eval_every: 0, eval_batches: 2, log_every: 500, seed: 3, threads: 1}
parallel: {tp: 1, dp: 2}
checkpoint: {every: 100, keep_last: 3, resume: auto}
output: {dir: $OUT}
EOF

# yield_when_idle: CI machines are shared; a rank waiting in a collective must not busy-poll
# the CPU away from the rank (or the other job) still computing.
job=$(sbatch --parsable --job-name=lora-requeue --ntasks=2 --chdir="$WORK" \
  --export=ALL,LORA_DIST="$bin",LAUNCHER="${LORA_SLURM_LAUNCHER:-srun}",OMPI_MCA_mpi_yield_when_idle=1 \
  "$repo/launch/slurm/train_single_node.sbatch" "$WORK/run.yaml") \
  || fail "sbatch failed"
job=${job%%;*}
log=$WORK/logs/lora-requeue-$job.out
say "submitted job $job (log $log)"

field() { { scontrol show job "$job" 2>/dev/null || true; } | tr ' ' '\n' | sed -n "s/^$1=//p" | head -n 1; }
train_steps() { # the "step" of every train line of metrics.jsonl, in file order
  [[ -f $OUT/metrics.jsonl ]] || return 0
  { grep '"type":"train"' "$OUT/metrics.jsonl" | grep -o '"step":[0-9]*' | cut -d: -f2; } || true
}

# --- first run: trains, writes a checkpoint ---------------------------------------------------
deadline=$((SECONDS + 60))
while :; do
  st=$(field JobState)
  [[ $st == PENDING || $st == RUNNING ]] || fail "job $job is $st before it was signalled"
  last=$(train_steps | tail -n 1)
  ckpts=$({ find "$OUT/checkpoints" -maxdepth 1 -name 'step_*.h5' 2>/dev/null || true; } | wc -l)
  if [[ -n $last ]] && ((last >= 120 && ckpts >= 1)); then break; fi
  ((SECONDS < deadline)) || fail "no train step >= 120 with a checkpoint within 60 s (last step '${last}', $ckpts checkpoints)"
  sleep 0.2
done
((last < steps - 100)) || fail "the run got to step $last of $steps before the signal: raise LORA_SLURM_TEST_STEPS"
say "first run at step $last with $ckpts checkpoint(s): $(cd "$OUT/checkpoints" && echo step_*.h5)"

# --- USR1 to the batch shell, as --signal=B:USR1@N would deliver it before the time limit -----
scancel --signal=USR1 --batch "$job" || fail "scancel --signal=USR1 --batch $job failed"
say "sent USR1 to the batch shell of job $job"

# The script requeues only after the trainer exited, so the moment Restarts=1 shows (and the
# job is PENDING: a requeued job may not start for cred_expire+1 = 6 s) every metrics line of
# the first run is in the file and none of the second run is.
deadline=$((SECONDS + 30))
while :; do
  restarts=$(field Restarts) st=$(field JobState)
  [[ ${restarts:-0} == 1 ]] && break
  [[ $st == PENDING || $st == RUNNING || $st == REQUEUED || $st == COMPLETING ]] \
    || fail "job $job ended $st instead of being requeued"
  ((SECONDS < deadline)) || fail "job $job was not requeued within 30 s of USR1 (Restarts=${restarts})"
  sleep 0.2
done
mapfile -t first < <(train_steps)
n_first_lines=$(wc -l <"$OUT/metrics.jsonl")
[[ $st != RUNNING ]] || fail "job $job was already running again when Restarts=1 was seen: cannot split the metrics"
say "requeued: JobState=$st Reason=$(field Reason) Restarts=$restarts; first run logged ${#first[@]} train steps"

# --- second run to the end ---------------------------------------------------------------------
deadline=$((SECONDS + 120))
while :; do
  st=$(field JobState)
  [[ $st == COMPLETED ]] && break
  [[ $st == PENDING || $st == RUNNING || $st == COMPLETING || $st == REQUEUED ]] \
    || fail "job $job ended $st (ExitCode=$(field ExitCode), Reason=$(field Reason))"
  ((SECONDS < deadline)) || fail "job $job not COMPLETED within 120 s of the requeue (JobState=$st)"
  sleep 0.5
done
say "job $job COMPLETED, ExitCode=$(field ExitCode), Restarts=$(field Restarts)"
[[ $(field ExitCode) == 0:0 ]] || fail "ExitCode=$(field ExitCode), expected 0:0"
[[ $(field Restarts) == 1 ]] || fail "Restarts=$(field Restarts), expected exactly 1"

# --- checks on the log ---------------------------------------------------------------------
[[ -f $log ]] || fail "no job log $log"
second_log=$(sed -n '/SLURM_RESTART_COUNT=1/,$p' "$log")
first_log=$(sed '/SLURM_RESTART_COUNT=1/,$d' "$log")
grep -q "SLURM_RESTART_COUNT unset: first run" <<<"$first_log" || fail "the first run did not log SLURM_RESTART_COUNT unset"
grep -q "got SIGUSR1" <<<"$first_log" || fail "the batch script did not log the USR1"
grep -q "trainer exited with status 75" <<<"$first_log" || fail "the trainer did not exit 75 after USR1"
grep -q "requeueing job $job" <<<"$first_log" || fail "the batch script did not requeue"
[[ -n $second_log ]] || fail "no second run in the log (no SLURM_RESTART_COUNT=1 line)"
grep -q "training finished" <<<"$second_log" || fail "the second run did not finish training"

# The trainer's resume message: a line saying "resum..." that names the checkpoint
# (step_XXXXXXXX.h5) or its step ("step N").
resume_line=$(grep -i 'resum' <<<"$second_log" | grep -v '^lora_job:' | grep -E 'step_[0-9]+\.h5|step [0-9]+' | head -n 1) \
  || fail "the second run's log has no trainer line about resuming from a checkpoint"
if [[ $resume_line =~ step_0*([0-9]+)\.h5 ]]; then resumed=${BASH_REMATCH[1]}
elif [[ $resume_line =~ step\ ([0-9]+) ]]; then resumed=${BASH_REMATCH[1]}; fi
say "trainer: $resume_line"

# --- checks on the metrics -------------------------------------------------------------------
mapfile -t all < <(train_steps)
second=("${all[@]:${#first[@]}}")
((${#first[@]} > 0 && ${#second[@]} > 0)) || fail "metrics: ${#first[@]} train lines in run 1, ${#second[@]} in run 2"
S=${first[-1]}
((first[0] == 1)) || fail "metrics: the first run started at step ${first[0]}, not 1"
for ((i = 1; i < ${#first[@]}; i++)); do
  ((first[i] == first[i - 1] + 1)) || fail "metrics: first run jumps from step ${first[i - 1]} to ${first[i]}"
done
grep -qE "step_0*$S\.h5" <<<"$first_log" || fail "the first run's log does not name the checkpoint of its last step $S"
((resumed == S)) || fail "the trainer resumed from step $resumed but the first run's last step was $S (its stop checkpoint)"
((second[0] == S + 1)) || fail "metrics: the second run starts at step ${second[0]}, expected $((S + 1)) (checkpoint step $S + 1)"
for ((i = 1; i < ${#second[@]}; i++)); do
  ((second[i] == second[i - 1] + 1)) || fail "metrics: second run jumps from step ${second[i - 1]} to ${second[i]}"
done
((second[-1] == steps)) || fail "metrics: the second run ended at step ${second[-1]}, not $steps"
again=$({ tail -n +$((n_first_lines + 1)) "$OUT/metrics.jsonl" | grep -c '"type":"train".*"step":1,\|"step":1,.*"type":"train"'; } || true)
((again == 0)) || fail "metrics: the second run logged train step 1 again"
# When the trainer records its resume in the metrics ({"type":"resume","step":S,...}), it must
# name the same step.
resume_rec=$(tail -n +$((n_first_lines + 1)) "$OUT/metrics.jsonl" | { grep '"type":"resume"' || true; } | head -n 1)
if [[ -n $resume_rec ]]; then
  if ! [[ $resume_rec =~ \"step\":([0-9]+) ]] || ((BASH_REMATCH[1] != S)); then
    fail "metrics: the resume record '$resume_rec' does not name step $S"
  fi
fi

say "PASS: run 1 steps 1..$S (stopped by USR1, checkpoint step $S, exit 75, requeued);" \
  "run 2 resumed at $((S + 1)) and finished at ${second[-1]}; job COMPLETED in $((SECONDS - t_start)) s"
ok=1
