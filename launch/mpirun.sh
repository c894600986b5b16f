#!/usr/bin/env bash
# Plain launcher for lora_dist on one machine (or inside any allocation) with Open MPI's mpirun.
#
#   launch/mpirun.sh -n 4 run.yaml                 # 4 ranks; -n defaults to tp*dp of run.yaml
#   launch/mpirun.sh -n 4 run.yaml -- --extra-lora_dist-args
#   launch/mpirun.sh run.yaml -- generate --adapter out/adapter.h5 --prompt "..."   # bench too
#   MPIRUN_ARGS="--hostfile hosts" launch/mpirun.sh -n 8 run.yaml
#
# - OMP_NUM_THREADS per rank = usable cores / ranks (at least 1), unless already set.
# - As root, sets OMPI_ALLOW_RUN_AS_ROOT(_CONFIRM) (mpirun refuses root otherwise).
# - More ranks than cores (outside a Slurm allocation): adds --oversubscribe.
# - SIGTERM and SIGUSR1 to this script are forwarded to every rank as SIGUSR1: each rank
#   finishes its step, writes a checkpoint and exits 75. mpirun runs in a session of its own,
#   so a TERM sent to this script's whole process group (a terminal closing, a supervisor
#   stopping the group) reaches only this script, never mpirun itself: plain mpirun, on TERM,
#   sends TERM to the ranks, SIGKILLs them one second later (odls_base_sigkill_timeout) and
#   exits 1 even when they wrote a checkpoint. Ctrl-C (INT) is passed on to mpirun, which
#   aborts the job at once, as plain mpirun does.
# - Exit status: the trainer's. 75 = "stopped on a signal, checkpoint written": run the same
#   command again to resume (with `checkpoint: {resume: auto}` in run.yaml).
# Environment: LORA_DIST (binary; default <repo>/build/lora_dist, else lora_dist on PATH),
#   MPIRUN (default mpirun), MPIRUN_ARGS (extra mpirun arguments), OMP_NUM_THREADS.
set -uo pipefail

say() { printf 'mpirun.sh: %s\n' "$*" >&2; }
usage() { sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

np="" yaml="" extra=()
while (($#)); do
  case $1 in
    -n | -np | --np) np=${2:-}; shift 2 || usage ;;
    -n[0-9]*) np=${1#-n}; shift ;;
    -h | --help) usage ;;
    --) shift; extra=("$@"); break ;;
    -*) say "unknown option $1"; usage ;;
    *) if [[ -z $yaml ]]; then yaml=$1; else extra+=("$1"); fi; shift ;;
  esac
done
[[ -n $yaml ]] || { say "error: no run config given"; usage; }
[[ -r $yaml ]] || { say "error: cannot read $yaml"; exit 2; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=launch/launch_lib.sh disable=SC1091
source "$here/launch_lib.sh"  # lora_cores, lora_yaml_get, lora_mpi_lost_link_settings

# tp*dp from run.yaml (block or flow style) when -n is not given; the trainer checks it anyway.
if [[ -z $np ]]; then
  tp=$(lora_yaml_get "$yaml" parallel tp) dp=$(lora_yaml_get "$yaml" parallel dp)
  [[ ${tp:-1} =~ ^[0-9]+$ && ${dp:-1} =~ ^[0-9]+$ ]] || { say "error: cannot read parallel.tp/dp from $yaml: pass -n"; exit 2; }
  np=$((${tp:-1} * ${dp:-1}))
fi
[[ $np =~ ^[1-9][0-9]*$ ]] || { say "error: -n must be a positive number, got '$np'"; exit 2; }

bin=${LORA_DIST:-}
if [[ -z $bin ]]; then
  if [[ -x $here/../build/lora_dist ]]; then bin=$(cd "$here/../build" && pwd)/lora_dist
  else bin=$(command -v lora_dist || true); fi
fi
[[ -n $bin && -x $bin ]] || { say "error: lora_dist not found: build it (cmake --build build) or set LORA_DIST"; exit 2; }

cores=$(lora_cores)
if [[ -z ${OMP_NUM_THREADS:-} ]]; then
  OMP_NUM_THREADS=$((cores / np))
  ((OMP_NUM_THREADS >= 1)) || OMP_NUM_THREADS=1
fi
export OMP_NUM_THREADS

if [[ $(id -u) == 0 ]]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
lora_mpi_lost_link_settings  # a lost link ends the whole job in ~20 s, not minutes (launch_lib.sh)
args=(-np "$np" -x OMP_NUM_THREADS)
# Threads need room: mpirun's default binds each rank to one core (np <= 2) or one socket.
[[ ${MPIRUN_ARGS:-} == *--bind-to* ]] || args+=(--bind-to none)
if [[ -z ${SLURM_JOB_ID:-} ]] && ((np > cores)) && [[ ${MPIRUN_ARGS:-} != *--hostfile* && ${MPIRUN_ARGS:-} != *--host* ]]; then
  args+=(--oversubscribe)
  # Idle ranks yield the CPU instead of busy-polling: without it, ranks waiting in a
  # collective starve the one still computing.
  export OMPI_MCA_mpi_yield_when_idle=${OMPI_MCA_mpi_yield_when_idle:-1}
fi
# shellcheck disable=SC2206
args+=(${MPIRUN_ARGS:-})

child="" nsig=0 sig=""
# shellcheck disable=SC2317  # called from the traps below
forward() { # signal name
  sig=$1
  nsig=$((nsig + 1))
  if [[ -z $child ]] || ! kill -0 "$child" 2>/dev/null; then return 0; fi
  say "got SIG$1: asking every rank to finish its step, write a checkpoint and exit (SIGUSR1)"
  kill -USR1 "$child" 2>/dev/null || true
}
trap 'forward TERM' TERM
trap 'forward USR1' USR1
# shellcheck disable=SC2317
interrupt() { nsig=$((nsig + 1)); [[ -n $child ]] && kill -INT "$child" 2>/dev/null; }
trap interrupt INT

sub=()  # a subcommand goes before --yaml: lora_dist generate --yaml run.yaml ...
if [[ ${extra[0]:-} == generate || ${extra[0]:-} == bench ]]; then sub=("${extra[0]}"); extra=("${extra[@]:1}"); fi
say "$np ranks x OMP_NUM_THREADS=$OMP_NUM_THREADS ($cores cores): ${MPIRUN:-mpirun} ${args[*]} $bin ${sub[*]} --yaml $yaml ${extra[*]}"
# setsid: mpirun gets its own process group and session (see the TERM note at the top).
setsid "${MPIRUN:-mpirun}" "${args[@]}" "$bin" "${sub[@]}" --yaml "$yaml" "${extra[@]}" &
child=$!
while :; do
  n=$nsig
  wait "$child"
  rc=$?
  if ((nsig != n && rc > 128)); then   # a trapped signal interrupted wait; the ranks still run
    if kill -0 "$child" 2>/dev/null; then continue; fi
    wait "$child"; r2=$?
    ((r2 == 127)) || rc=$r2
  fi
  break
done

case $rc in
  0) ;;
  75) say "stopped${sig:+ on SIG$sig}: checkpoint written (exit 75). Run the same command again to resume" \
        "(checkpoint.resume: auto in $yaml)" ;;
  *) say "lora_dist failed with status $rc" ;;
esac
exit "$rc"
