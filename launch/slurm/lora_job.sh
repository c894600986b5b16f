# shellcheck shell=bash
# Sourced by train_single_node.sbatch and train_multi_node.sbatch (not run on its own): starts
# lora_dist as one job step, turns a stop signal into checkpoint-and-requeue, and logs why.
#
# The contract with the trainer (trainer/main.cpp): on SIGUSR1 or SIGTERM every rank finishes
# its current step, a checkpoint is written to <output.dir>/checkpoints/, and every rank exits
# with status 75. With `checkpoint: {resume: auto}` the next start resumes from the newest
# good checkpoint there, so a requeued job simply runs the same command again.
#
# Environment (all optional):
#   LORA_YAML     run config, when not given as the script's first argument
#   LORA_DIST     the lora_dist binary (default: <repo>/build/lora_dist, else lora_dist on PATH)
#   LAUNCHER      srun (default: srun --mpi=$SRUN_MPI) | mpirun (Open MPI inside the allocation)
#   SRUN_MPI      srun's MPI plugin, default pmix (Debian's Open MPI speaks PMIx only)
#   SRUN_ARGS     extra srun arguments;  MPIRUN_ARGS  extra mpirun arguments
#   OMP_NUM_THREADS  threads per rank; default: the CPUs Slurm gives each task
#   LORA_REQUEUE  1 (default): requeue after the trainer exits 75 on a USR1; 0: just exit 75

lora_log() { printf 'lora_job: %s\n' "$*"; }
# lora_cores and lora_yaml_get, shared with launch/mpirun.sh.
# shellcheck source=launch/launch_lib.sh disable=SC1091
source "$(dirname "${BASH_SOURCE[0]}")/../launch_lib.sh"

# Where this file lives, so the repo (and its build/lora_dist) can be found. sbatch runs a
# COPY of the job script from slurmd's spool, so the script's own path says nothing: use the
# path the sbatch script found us at.
lora_job_main() { # lib_path [yaml]
  local lib=$1 yaml=${2:-${LORA_YAML:-}}
  local repo; repo=$(cd "$(dirname "$lib")/../.." && pwd)

  lora_log "job ${SLURM_JOB_ID:-?} (${SLURM_JOB_NAME:-?}) on $(hostname -s) at $(date '+%F %T'):" \
    "${SLURM_NTASKS:-?} tasks on ${SLURM_JOB_NUM_NODES:-?} node(s) [${SLURM_JOB_NODELIST:-?}]"
  if [[ -z ${SLURM_RESTART_COUNT:-} ]]; then
    lora_log "SLURM_RESTART_COUNT unset: first run of this job"
  else
    lora_log "SLURM_RESTART_COUNT=$SLURM_RESTART_COUNT: restarted after a requeue;" \
      "the trainer resumes from the newest checkpoint in output.dir (checkpoint.resume: auto)"
  fi

  # --- what to run ------------------------------------------------------------------------
  [[ -n $yaml ]] || { lora_log "error: no run config: pass it as the first argument or set LORA_YAML"; return 2; }
  [[ $yaml == /* ]] || yaml=$PWD/$yaml   # the job's working dir: the submit dir, or --chdir
  [[ -r $yaml ]] || { lora_log "error: cannot read the run config $yaml"; return 2; }
  local bin=${LORA_DIST:-}
  if [[ -z $bin ]]; then
    if [[ -x $repo/build/lora_dist ]]; then bin=$repo/build/lora_dist
    else bin=$(command -v lora_dist || true); fi
  fi
  [[ -n $bin && -x $bin ]] || {
    lora_log "error: lora_dist not found (set LORA_DIST, build $repo/build/lora_dist, or put it on PATH)"; return 2; }

  local resume tp dp
  resume=$(lora_yaml_get "$yaml" checkpoint resume)
  tp=$(lora_yaml_get "$yaml" parallel tp)
  dp=$(lora_yaml_get "$yaml" parallel dp)
  lora_log "config $yaml (parallel tp=${tp:-1} dp=${dp:-1}, checkpoint.resume=${resume:-none}); binary $bin"
  if [[ ${resume:-none} == none ]]; then
    lora_log "warning: checkpoint.resume is not 'auto': a requeued run would start again from step 0"
  fi
  if [[ -n ${tp:-} && -n ${dp:-} && -n ${SLURM_NTASKS:-} ]] && ((tp * dp != SLURM_NTASKS)); then
    lora_log "warning: tp*dp = $((tp * dp)) but the job has $SLURM_NTASKS tasks: the trainer will refuse to start"
  fi
  # Ranks are placed in blocks (ranks 0..k-1 on the first node, ...) and a TP group is tp
  # consecutive ranks, so a TP group stays on one node when tasks-per-node is a multiple of tp.
  local tpn=${SLURM_NTASKS_PER_NODE:-${SLURM_TASKS_PER_NODE:-}}   # e.g. "4" or "4(x2)" or "3,2"
  tpn=${tpn%%(*}; tpn=${tpn%%,*}
  if [[ -n ${tp:-} && $tp =~ ^[0-9]+$ && $tpn =~ ^[0-9]+$ ]] && ((${SLURM_JOB_NUM_NODES:-1} > 1 && tpn % tp != 0)); then
    lora_log "warning: tasks per node ($tpn) is not a multiple of tp ($tp): some TP groups span two nodes" \
      "and their per-layer all-reduces cross the network"
  fi

  # --- threads per rank: the CPUs Slurm gives each task -------------------------------------
  if [[ -z ${OMP_NUM_THREADS:-} ]]; then
    local t=${SLURM_CPUS_PER_TASK:-}
    if [[ -z $t ]]; then
      local cpus=${SLURM_CPUS_ON_NODE:-$(lora_cores)} per=$tpn
      if [[ -z $per ]]; then per=$(((${SLURM_NTASKS:-1} + ${SLURM_JOB_NUM_NODES:-1} - 1) / ${SLURM_JOB_NUM_NODES:-1})); fi
      t=$((cpus / (per > 0 ? per : 1)))
    fi
    ((t >= 1)) || t=1
    export OMP_NUM_THREADS=$t
  fi

  # More ranks than cores on a node (e.g. the localhost cluster advertising 4 CPUs on 2 cores):
  # Open MPI busy-polls while waiting in a collective, which then starves the rank that has
  # the work. Measured, 4 ranks (tp=2 dp=2) on 2 cores: 3000 tiny steps took 8 s with
  # yielding; without it the trainer's own ETA read 34 min. Open MPI yields by itself only
  # when it knows it oversubscribes, which a direct srun launch does not tell it.
  local ncores; ncores=$(lora_cores)
  if [[ -z ${OMPI_MCA_mpi_yield_when_idle:-} && $tpn =~ ^[0-9]+$ ]] && ((tpn > ncores)); then
    export OMPI_MCA_mpi_yield_when_idle=1
    lora_log "$tpn ranks on $ncores cores: OMPI_MCA_mpi_yield_when_idle=1 (idle ranks yield the CPU)"
  fi

  # --- the job step ------------------------------------------------------------------------
  local launcher=${LAUNCHER:-srun} cmd=()
  case $launcher in
    srun)
      # shellcheck disable=SC2206
      cmd=(srun --mpi="${SRUN_MPI:-pmix}" --distribution=block:block ${SRUN_ARGS:-} "$bin" --yaml "$yaml") ;;
    mpirun)
      if [[ $(id -u) == 0 ]]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
      lora_mpi_lost_link_settings  # mpirun's daemons: a lost link ends the job in ~20 s (launch_lib.sh)
      # Slots come from the allocation; --map-by slot fills node by node (block placement).
      # shellcheck disable=SC2206
      cmd=(mpirun --map-by slot --bind-to none -x OMP_NUM_THREADS ${MPIRUN_ARGS:-} "$bin" --yaml "$yaml") ;;
    *) lora_log "error: LAUNCHER must be srun or mpirun, got '$launcher'"; return 2 ;;
  esac

  if [[ ${lora_sig:-} == TERM ]]; then
    lora_log "got SIGTERM before the trainer started: Slurm is stopping the job"
    return 143
  fi
  if [[ ${lora_sig:-} == USR1 ]]; then
    # USR1 before the trainer even started: this run began within --signal's window of its
    # time limit (slurmctld signals at the first 30 s check once <= N+30 s are left), e.g.
    # --time=1 --signal=B:USR1@30. Requeueing now would loop without progress, so train
    # anyway: the periodic checkpoints keep the work, the time limit ends the job.
    lora_log "warning: SIGUSR1 before the trainer started: the time limit is within the" \
      "--signal window (+30 s); training without a stop signal this run (raise --time or lower --signal)"
    lora_sig=""
  fi

  lora_child=""
  lora_nsig=0
  trap 'lora_on_signal USR1' USR1
  trap 'lora_on_signal TERM' TERM
  lora_log "OMP_NUM_THREADS=$OMP_NUM_THREADS; starting: ${cmd[*]}"
  local t0=$SECONDS rc r r2 n
  "${cmd[@]}" &
  lora_child=$!
  while :; do
    n=$lora_nsig
    wait "$lora_child"
    r=$?
    # `wait` returns >128 when a trapped signal interrupts it: the step is still running.
    if ((lora_nsig != n && r > 128)); then
      if kill -0 "$lora_child" 2>/dev/null; then continue; fi
      wait "$lora_child"; r2=$?
      ((r2 == 127)) || r=$r2
    fi
    rc=$r
    break
  done
  lora_log "trainer exited with status $rc after $((SECONDS - t0)) s"

  case $rc in
    0)
      lora_log "training finished"
      return 0 ;;
    75)
      if [[ ${lora_sig:-} == TERM ]]; then
        # scancel or a preemption: Slurm decides what happens next (a PreemptMode=REQUEUE
        # requeues by itself); requeueing here would undo a user's scancel.
        lora_log "checkpoint written after SIGTERM; not requeueing (Slurm is stopping this job)"
        return 75
      fi
      if [[ ${LORA_REQUEUE:-1} != 1 ]]; then
        lora_log "checkpoint written; LORA_REQUEUE=0, so not requeueing: resubmit to resume"
        return 75
      fi
      lora_log "checkpoint written (exit 75)${lora_sig:+ after SIG$lora_sig}"
      lora_requeue || return 75
      return 0 ;;
    *)
      lora_log "error: the trainer failed (status $rc); not requeueing"
      return "$rc" ;;
  esac
}

lora_on_signal() {
  lora_sig=$1
  lora_nsig=$((lora_nsig + 1))
  lora_log "got SIG$1 at $(date '+%F %T')"
  if [[ -n ${lora_child:-} ]] && kill -0 "$lora_child" 2>/dev/null; then
    # Always forwarded as USR1: it means the same to the trainer as TERM (finish the step,
    # checkpoint, exit 75), and srun/mpirun pass USR1 through to every rank, whereas their own
    # reaction to TERM is to tear the job down.
    lora_log "forwarding SIGUSR1 to the job step (pid $lora_child): every rank finishes its step," \
      "writes a checkpoint and exits 75"
    kill -USR1 "$lora_child" 2>/dev/null || true
  fi
}

lora_requeue() {
  lora_log "requeueing job $SLURM_JOB_ID (scontrol requeue): the next run resumes from this checkpoint"
  local out
  if out=$(scontrol requeue "$SLURM_JOB_ID" 2>&1); then
    # Slurm now ends this run (the log gets "CANCELLED ... DUE TO JOB REQUEUE").
    return 0
  fi
  lora_log "error: scontrol requeue failed: $out (was the job submitted with --no-requeue?)"
  return 1
}

# The sbatch script installed stub traps before sourcing us; if a signal came meanwhile it
# is in lora_sig and lora_job_main acts on it.
