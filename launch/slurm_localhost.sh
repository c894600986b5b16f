#!/usr/bin/env bash
# A private, single-node Slurm cluster on localhost (munged + slurmctld + slurmd) with every
# file under one state directory: for the real-Slurm test and for trying the sbatch scripts
# on a workstation. Follows ../shared/recipes/slurm-localhost.md (Debian 12, Slurm 22.05).
#
#   launch/slurm_localhost.sh up   <state_dir> [--cpus N]   start it; prints the SLURM_CONF line
#   launch/slurm_localhost.sh down <state_dir>              stop it by PID (safe to repeat)
#   launch/slurm_localhost.sh status <state_dir>            exit 0 if all three daemons run
#   source <state_dir>/env.sh                               then sinfo / sbatch / srun as usual
#
# It never touches /etc, /var, /run or the system's own munge/slurm daemons: the config,
# munge key and socket, spool, logs and pid files all live under <state_dir>, the ports are
# free ones picked at start, and teardown kills only the PIDs this script recorded (checked
# against /proc/PID/comm and the process start time, so a reused PID is never hit).
# --cpus N (default: max(4, cores)) is the CPU count the node advertises
# (SlurmdParameters=config_overrides), so 2 to 4 ranks fit on a 2-core machine.
# Needs root (SlurmUser/SlurmdUser root), like the recipe; packages: launch/install_deps.sh.
set -euo pipefail
# shellcheck source=launch/launch_lib.sh disable=SC1091
source "$(dirname "${BASH_SOURCE[0]}")/launch_lib.sh"  # lora_slurm_conf_policy

die() { echo "slurm_localhost: error: $*" >&2; exit 1; }
log() { echo "slurm_localhost: $*" >&2; }

usage() { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

(($# >= 2)) || usage
cmd=$1 state_arg=$2
shift 2
cpus=""
while (($#)); do
  case $1 in
    --cpus) cpus=${2:?--cpus needs a number}; shift 2 ;;
    *) usage ;;
  esac
done
[[ -z $cpus || $cpus =~ ^[1-9][0-9]*$ ]] || die "--cpus must be a positive integer, got '$cpus'"

# Refuse anything that could land the state (and the later rm/kill bookkeeping) in a system dir.
if [[ $cmd == up ]]; then mkdir -p -- "$state_arg" || die "cannot create $state_arg"; fi
if [[ -d $state_arg ]]; then STATE=$(cd -- "$state_arg" && pwd -P); else STATE=$state_arg; fi
case $STATE in
  / | /etc | /etc/* | /var | /var/* | /run | /run/* | /usr | /usr/* | /proc/* | /sys/* | /dev/*)
    die "refusing state dir $STATE (a system directory)" ;;
esac

CONF=$STATE/etc/slurm.conf
RECORD=$STATE/run/daemons   # "name pid starttime" per daemon, written by us, never removed by them
export SLURM_CONF=$CONF

# Field 22 of /proc/PID/stat: the start time in clock ticks since boot. comm may contain spaces
# or parentheses, so cut at the last ')'. Field 3 is the state: a daemon killed outside our
# control stays a zombie (Z) where PID 1 does not reap, e.g. in a container; that is not alive.
# shellcheck disable=SC2086  # split into fields on purpose
stat_field() { # pid n: the n-th field after "pid (comm)"
  local s n=$2
  s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  s=${s##*) }
  set -- $s
  echo "${!n}"
}
starttime() { stat_field "$1" 20; }
running() { local st; st=$(stat_field "$1" 1) && [[ $st != Z && $st != X ]]; }
comm_of() { cat "/proc/$1/comm" 2>/dev/null; }

# A recorded daemon is "ours and alive" when the PID runs the same program since the same tick.
alive() { # name pid start
  [[ -n ${2:-} && "$(comm_of "$2")" == "$1" && "$(starttime "$2")" == "$3" ]] && running "$2"
}

read_record() { if [[ -f $RECORD ]]; then cat "$RECORD"; fi; }

all_alive() {
  local n=0 name pid st
  while read -r name pid st; do
    [[ -n ${name:-} ]] || continue
    alive "$name" "$pid" "$st" || return 1
    n=$((n + 1))
  done < <(read_record)
  ((n == 3))
}

# TCP ports somebody listens on, from /proc (no ss/netstat needed). State 0A = LISTEN.
listening_ports() {
  local f
  for f in /proc/net/tcp /proc/net/tcp6; do
    [[ -r $f ]] || continue
    awk 'NR > 1 && $4 == "0A" { n = split($2, a, ":"); print a[n] }' "$f"
  done | while read -r hex; do echo $((16#$hex)); done
}

# Two consecutive free ports outside the ephemeral range (so no outgoing connection grabs them).
pick_ports() {
  local used p tries
  used=" $(listening_ports | tr '\n' ' ') "
  for ((tries = 0; tries < 200; tries++)); do
    p=$((20000 + (RANDOM % 6000) * 2))
    [[ $used == *" $p "* || $used == *" $((p + 1)) "* ]] && continue
    echo "$p $((p + 1))"
    return 0
  done
  die "no free port pair found in 20000-32000"
}

record_daemon() { # name pidfile
  local name=$1 pidfile=$2 pid="" st i
  for ((i = 0; i < 100; i++)); do   # the pid file appears after the daemon forks: up to 10 s
    [[ -s $pidfile ]] && pid=$(tr -dc '0-9' <"$pidfile") && [[ -n $pid ]] && break
    sleep 0.1
  done
  [[ -n $pid ]] || return 1
  st=$(starttime "$pid") || return 1
  [[ "$(comm_of "$pid")" == "$name" ]] || return 1
  echo "$name $pid $st" >>"$RECORD"
}

show_logs() {
  local f
  for f in "$STATE"/log/*.log; do
    [[ -f $f ]] || continue
    echo "---- tail of $f" >&2
    tail -n 15 "$f" >&2
  done
}

# stop_daemons [name...]: TERM the recorded daemons (all, or only those named), KILL after 10 s.
stop_daemons() {
  local only=" $* " name pid st pids=() left=() i
  sel() { [[ $only == "  " || $only == *" $1 "* ]]; }
  # Read every record BEFORE killing anything: the daemons delete their own pid files on exit.
  while read -r name pid st; do
    if [[ -n ${name:-} ]] && sel "$name" && alive "$name" "$pid" "$st"; then pids+=("$pid"); fi
  done < <(read_record)
  if ((${#pids[@]})); then
    kill -TERM "${pids[@]}" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do   # each takes 1.5-2 s after TERM; 10 s for all together
      left=()
      for pid in "${pids[@]}"; do if running "$pid"; then left+=("$pid"); fi; done
      ((${#left[@]})) || break
      sleep 0.1
    done
    if ((${#left[@]})); then
      log "still running 10 s after TERM, sending KILL: ${left[*]}"
      # Re-check identity right before KILL: a PID that exited meanwhile may have been reused.
      while read -r name pid st; do
        if [[ -n ${name:-} ]] && sel "$name" && alive "$name" "$pid" "$st"; then kill -KILL "$pid" 2>/dev/null || true; fi
      done < <(read_record)
    fi
  fi
  if [[ $only == "  " ]]; then
    rm -f -- "$RECORD"
  elif [[ -f $RECORD ]]; then
    local kept; kept=$(read_record | while read -r name pid st; do sel "$name" || echo "$name $pid $st"; done)
    printf '%s\n' "$kept" | grep . >"$RECORD" || : >"$RECORD"
  fi
  return 0
}

# slurmstepd (and the ranks under it) of jobs on THIS cluster: slurmd passes its environment,
# SLURM_CONF included, to the stepds it forks. Matched on that, never on the name alone.
leftover_stepds() {
  local d pid
  for d in /proc/[0-9]*; do
    pid=${d#/proc/}
    [[ "$(comm_of "$pid")" == slurmstepd ]] || continue
    if tr '\0' '\n' 2>/dev/null <"$d/environ" | grep -qxF "SLURM_CONF=$CONF"; then echo "$pid"; fi
  done
  return 0
}

cancel_jobs() {
  all_alive || return 0
  local ids i
  ids=$(squeue -h -o %i 2>/dev/null | tr '\n' ' ') || return 0
  [[ -n ${ids// /} ]] || return 0
  log "cancelling jobs: $ids"
  # shellcheck disable=SC2086
  scancel $ids 2>/dev/null || true
  for ((i = 0; i < 150; i++)); do   # KillWait=5: a job is gone within ~6 s
    [[ -z "$(squeue -h -o %i 2>/dev/null)" ]] && break
    sleep 0.1
  done
}

do_down() {
  if [[ ! -d $STATE ]]; then log "$STATE: no such state dir, nothing to stop"; return 0; fi
  if [[ ! -f $RECORD ]]; then log "$STATE: not running"; return 0; fi
  cancel_jobs
  stop_daemons
  local stray
  stray=$(leftover_stepds | tr '\n' ' ')
  if [[ -n ${stray// /} ]]; then
    log "killing leftover slurmstepd of this cluster: $stray"
    # shellcheck disable=SC2086
    kill -KILL $stray 2>/dev/null || true
  fi
  log "$STATE: stopped"
}

write_conf() { # node ctld_port slurmd_port cpus mem
  local node=$1 cport=$2 dport=$3 ncpu=$4 mem=$5 user first_job
  user=$(id -un)
  # Job ids must differ between clusters that run side by side on this host: a direct-launched
  # Open MPI job names its shared-memory segments (/dev/shm/vader_segment.<host>.<id>.<rank>)
  # after a hash of the PMIx namespace "slurm.pmix.<jobid>.<stepid>", so job 1 of two clusters
  # at once mapped the same segments and crashed in MPI_Allreduce (SIGSEGV in btl_vader).
  first_job=$(( ((RANDOM << 15) | RANDOM) % 50000000 + 1000 ))
  cat >"$CONF" <<EOF
# Written by launch/slurm_localhost.sh: a private one-node cluster; everything under $STATE.
ClusterName=lora_localhost
FirstJobId=$first_job
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$cport
SlurmdPort=$dport
SlurmUser=$user
SlurmdUser=$user
AuthType=auth/munge
CredType=cred/munge
# cred_expire=5: a requeued job may start again 6 s later (default 120 => 121 s).
AuthInfo=socket=$STATE/munge/munge.socket,cred_expire=5
StateSaveLocation=$STATE/spool/ctld
SlurmdSpoolDir=$STATE/spool/d
SlurmctldPidFile=$STATE/run/slurmctld.pid
SlurmdPidFile=$STATE/run/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
TmpFS=$STATE/tmp
$(lora_slurm_conf_policy)
NodeName=$node CPUs=$ncpu Boards=1 SocketsPerBoard=1 CoresPerSocket=$ncpu ThreadsPerCore=1 RealMemory=$mem NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
}

do_up() {
  local b
  for b in munged mungekey munge unmunge slurmctld slurmd sinfo; do
    command -v "$b" >/dev/null || die "'$b' not found: install the packages with launch/install_deps.sh (slurm-wlm munge)"
  done
  if all_alive; then
    log "$STATE: already up"
    echo "export SLURM_CONF=$CONF"
    return 0
  fi
  [[ -f $RECORD ]] && { log "$STATE: a previous cluster is partly up: stopping it first"; do_down; }

  mkdir -p "$STATE"/{etc,munge,log,run,spool/ctld,spool/d,tmp}
  # munged refuses a socket dir that is not 755 all the way (mktemp -d gives 0700).
  chmod 755 "$STATE" "$STATE"/{etc,munge,log,run,spool,spool/ctld,spool/d,tmp}
  rm -f -- "$STATE"/run/*.pid "$STATE"/munge/munged.pid "$STATE"/munge/munge.socket*

  local node mem
  node=$(hostname -s)
  mem=$({ slurmd -C 2>/dev/null | sed -n '1s/.*RealMemory=\([0-9]*\).*/\1/p'; } || true)
  [[ -n $mem ]] || mem=1000
  if [[ -z $cpus ]]; then cpus=$(nproc); ((cpus >= 4)) || cpus=4; fi

  # --- munged ---------------------------------------------------------------------------
  local key=$STATE/munge/munge.key sock=$STATE/munge/munge.socket
  if [[ ! -s $key ]]; then
    mungekey --create --keyfile="$key" >/dev/null 2>&1 || {
      (umask 077 && head -c 1024 /dev/urandom >"$key")
    }
  fi
  chmod 600 "$key"
  : >"$RECORD"
  munged --socket="$sock" --key-file="$key" --pid-file="$STATE/munge/munged.pid" \
    --log-file="$STATE/log/munged.log" --seed-file="$STATE/munge/munged.seed" \
    || { show_logs; do_down; die "munged failed to start"; }
  record_daemon munged "$STATE/munge/munged.pid" || { show_logs; do_down; die "munged did not stay up"; }
  munge -n -S "$sock" | unmunge -S "$sock" >/dev/null 2>&1 \
    || { show_logs; do_down; die "munge round trip through $sock failed"; }

  # --- slurmctld + slurmd, on free ports; retried if a port got taken meanwhile -------------
  local attempt cport dport ok=0 i state
  for attempt in 1 2 3; do
    read -r cport dport < <(pick_ports)
    write_conf "$node" "$cport" "$dport" "$cpus" "$mem"
    # Both daemonize and return 0 even when they die right after (e.g. port in use): the
    # pid file + /proc check below is what tells.
    slurmctld -f "$CONF" || true
    slurmd -f "$CONF" -N "$node" || true
    if record_daemon slurmctld "$STATE/run/slurmctld.pid" && record_daemon slurmd "$STATE/run/slurmd.pid"; then
      ok=1
      # Readiness: the node must come up idle (about 0.05-1.2 s; 30 s at most).
      for ((i = 0; i < 300; i++)); do
        state=$(sinfo -h -n "$node" -o %T 2>/dev/null | head -n 1) || state=""
        [[ $state == idle ]] && break
        all_alive || { ok=0; break; }
        sleep 0.1
      done
      [[ $ok == 1 && $state == idle ]] && break
      ok=0
    fi
    if grep -qs "Address already in use" "$STATE/log/slurmctld.log" "$STATE/log/slurmd.log"; then
      log "port $cport/$dport taken, retrying on another pair (attempt $attempt)"
      stop_daemons slurmctld slurmd
      : >"$STATE/log/slurmctld.log"; : >"$STATE/log/slurmd.log"
      continue
    fi
    break
  done
  if [[ $ok != 1 ]]; then
    show_logs
    do_down
    die "the node did not come up idle (state '${state:-none}'); logs above, under $STATE/log"
  fi
  echo "export SLURM_CONF=$CONF" >"$STATE/env.sh"
  log "up: node $node, $cpus CPUs, partition debug, ports $cport/$dport, state $STATE"
  echo "export SLURM_CONF=$CONF"
}

case $cmd in
  up) do_up ;;
  down) do_down ;;
  status)
    if all_alive; then echo "up: $(read_record | awk '{print $1 "=" $2}' | tr '\n' ' ')"; exit 0; fi
    echo "down"; exit 1 ;;
  *) usage ;;
esac
