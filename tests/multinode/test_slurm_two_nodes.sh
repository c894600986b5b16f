#!/usr/bin/env bash
# Multi-node Slurm for real (issue 9 point 3): a private two-node Slurm cluster made of the
# test hosts of hosts.sh, and launch/slurm/train_multi_node.sbatch run across it.
#   hA (10.77.0.1): munged, slurmctld, `slurmd -N nodeA`     hB (10.77.0.2): `slurmd -N nodeB`
# Each daemon runs inside its host's namespaces (network, hostname, /dev/shm); the file system
# is shared, so one state dir serves both (per-node spool, pid and log files via %n; the PMIx
# temp dir TmpFS is in each host's own /dev/shm). Every Slurm command runs inside hA: the
# machine's own network namespace has no route to the hosts.
# The job: --nodes=2 --ntasks-per-node=2, tp 2 (inside a node) x dp 2 (across the nodes),
# `srun --mpi=pmix`, checkpoint every 20 steps, resume: auto. Once a checkpoint exists the
# batch shell gets USR1 (scancel --signal=USR1 --batch, as --signal=B:USR1@N would deliver it).
# Checks: ranks 0,1 on nodeA (hA) and 2,3 on nodeB (hB), seen in /proc and in the job log;
# the trainer exits 75, the job requeues itself, the restarted run (SLURM_RESTART_COUNT=1)
# resumes from the stop checkpoint and finishes, COMPLETED 0:0 with Restarts=1; every train
# loss (before the stop and after the resume) equals an uninterrupted one-rank run of the
# same YAML to 1e-5 relative.
# Prints ok/FAIL per check, then "slurm_two_nodes: N passed, M failed"; exit 0 only if all
# passed, 77 (ctest SKIP_RETURN_CODE) with a loud SKIP line where namespaces or Slurm are
# impossible here. The EXIT trap removes everything it made: every process in its namespaces
# (daemons, slurmstepd, ranks; by PID), the namespaces, the /etc/hosts lines, the state dir.
#
#   tests/multinode/test_slurm_two_nodes.sh BIN REPO WORK
# Env: LORA_S2_STEPS (default 300), LORA_MN_PREFIX (namespace prefix, default lms here, so it
# never meets test_multinode.sh's lmn hosts), LORA_MN_NET (see hosts.sh).
set -u
bin=${1:?usage: test_slurm_two_nodes.sh BIN REPO WORK} repo=${2:?REPO} work=${3:?WORK}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
repo=$(cd "$repo" && pwd)
mkdir -p "$work" && work=$(cd "$work" && pwd)
t_start=$SECONDS
say() { printf '[%3ds] %s\n' $((SECONDS - t_start)) "$*"; }

export LORA_MN_STATE=$work/hosts
export LORA_MN_PREFIX=${LORA_MN_PREFIX:-lms}
# shellcheck source=tests/multinode/hosts.sh
source "$here/hosts.sh"
# shellcheck source=launch/launch_lib.sh
source "$here/../../launch/launch_lib.sh"  # lora_slurm_conf_policy
# A previous run's hosts (killed before its trap ran) go first.
[[ -f $MN_STATE/state ]] && mn_down
rm -rf -- "$work" && mkdir -p "$work" && chmod 755 "$work"

skip_all() {
  echo "SKIP ******** multinode.slurm_two_nodes: $* ********"
  echo "slurm_two_nodes: 0 passed, 0 failed, SKIPPED"
  exit 77
}
if ! why=$(mn_probe); then
  skip_all "this machine cannot make test hosts: $why (needs root with network, UTS and mount namespaces)"
fi
for c in munged mungekey munge unmunge slurmctld slurmd sbatch scontrol scancel sinfo squeue srun; do
  command -v "$c" >/dev/null || skip_all "'$c' not found: needs Debian's slurm-wlm and munge (launch/install_deps.sh)"
done

passed=0 failed=0
ok() { echo "ok   $*"; passed=$((passed + 1)); }
bad() { echo "FAIL $*"; failed=$((failed + 1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }
finish() {
  say "slurm_two_nodes done in $((SECONDS - t_start)) s"
  echo "slurm_two_nodes: $passed passed, $failed failed"
  ((failed == 0)) && exit 0
  exit 1
}

S=$work/slurm          # state: config, munge key + socket, spool, pid files (removed on exit)
L=$work/logs           # daemon logs, the job log, outputs: kept as test artifacts
J=$work/job
job=""
cleanup() {
  local rc=$?
  trap - EXIT
  if ((rc != 0 && rc != 77)); then
    if [[ -n $job ]]; then say "scontrol show job $job:"; sc scontrol show job "$job" 2>&1 | sed 's/^/    /'; fi
    for f in "$J"/logs/*.out "$L"/slurmctld.log "$L"/slurmd.node*.log; do
      [[ -f $f ]] && { say "---- tail of $f"; tail -n 30 "$f" | sed 's/^/    /'; }
    done
  fi
  # Every process in the namespaces (munged, slurmctld, both slurmd, slurmstepd, srun,
  # ranks), by PID: TERM, 3 s, KILL; then the namespaces and the /etc/hosts lines.
  mn_down
  local p
  for p in $(pgrep -f -- "$work/" 2>/dev/null); do [[ $p != "$$" ]] && kill -KILL "$p" 2>/dev/null; done
  rm -rf -- "$S"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mn_up 2 >/dev/null 2>&1 || { bad "hosts.sh up 2"; finish; }
say "hosts up: $(for h in $(mn_hosts); do echo -n "$h=$(mn_ip "$h") (holder $(mn_holder "$h")) "; done)"

# ---- the reference: one rank, same YAML at tp 1 dp 1, in the background meanwhile -------------
steps=${LORA_S2_STEPS:-300}
export OMP_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_mpi_yield_when_idle=1   # 4 ranks on 2 shared cores: waiting ranks yield
config() { # NAME TP DP
  cat >"$work/$1.yaml" <<EOF
model: {n_layer: 2, n_head: 4, d_model: 64, vocab_size: 256, context: 32, init: seed, init_seed: 7, init_std: 0.1}
lora: {r: 4, alpha: 8, dropout: 0.05, targets: all}
optim: {lr: 2.0e-3, warmup_steps: 10, decay: cosine}
data: {train: $repo/data/demo_train.bin}
train: {steps: $steps, batch_size: 8, micro_batch: 2, seq_len: 32, eval_every: 0, eval_batches: 1, log_every: 50, seed: 3, threads: 1}
parallel: {tp: $2, dp: $3}
checkpoint: {every: 20, keep_last: 20, resume: auto}
output: {dir: $work/out_$1}
EOF
  echo "$work/$1.yaml"
}
ref=$(config ref 1 1)
run=$(config run 2 2)
mkdir -p "$L" "$J/logs"
"$here/hosts.sh" exec hB mpirun -np 1 --bind-to none "$bin" --yaml "$ref" >"$L/ref.log" 2>&1 </dev/null &
ref_pid=$!

# ---- the cluster -------------------------------------------------------------------------------
mkdir -p "$S"/{etc,munge,ctld,spool/nodeA,spool/nodeB,run}
chmod 755 "$S" "$S"/{etc,munge,ctld,spool,spool/nodeA,spool/nodeB,run}
export SLURM_CONF=$S/etc/slurm.conf
first_job=$(( ((RANDOM << 15) | RANDOM) % 50000000 + 1000 ))
ipA=$(mn_ip hA) ipB=$(mn_ip hB)
cat >"$SLURM_CONF" <<EOF
# Written by tests/multinode/test_slurm_two_nodes.sh: two nodes in the test hosts hA and hB.
ClusterName=lora_two_nodes
FirstJobId=$first_job
# slurmctld runs inside hA: its hostname there is hA.
SlurmctldHost=hA($ipA)
SlurmctldPort=6817
SlurmdPort=6818
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$S/munge/munge.socket,cred_expire=5
StateSaveLocation=$S/ctld
# One file system for both nodes: %n (the NodeName) keeps each slurmd's files apart.
SlurmdSpoolDir=$S/spool/%n
SlurmctldPidFile=$S/run/slurmctld.pid
SlurmdPidFile=$S/run/slurmd.%n.pid
SlurmctldLogFile=$L/slurmctld.log
SlurmdLogFile=$L/slurmd.%n.log
SlurmctldDebug=info
SlurmdDebug=info
# PMIx app dirs (spmix_appdir_<uid>_<job>.<step>) would have the same name on both nodes in a
# shared dir, and each node removes its own at the end of a step: /dev/shm is per host.
TmpFS=/dev/shm/lora_slurm_tmp
$(lora_slurm_conf_policy)
NodeName=nodeA NodeAddr=$ipA CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=1000 State=UNKNOWN
NodeName=nodeB NodeAddr=$ipB CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=1000 State=UNKNOWN
PartitionName=two Nodes=nodeA,nodeB Default=YES MaxTime=INFINITE State=UP
EOF
sc() { mn_exec hA "$@"; }   # a Slurm command, inside hA (SLURM_CONF is exported)
alive() { [[ "$(cat /proc/"$2"/comm 2>/dev/null)" == "$1" ]]; }
pidof_file() { local i p; for ((i = 0; i < 100; i++)); do p=$(tr -dc '0-9' 2>/dev/null <"$1"); [[ -n $p ]] && { echo "$p"; return 0; }; sleep 0.1; done; return 1; }

t_up=$SECONDS
mungekey --create --keyfile="$S/munge/munge.key" >/dev/null 2>&1 || (umask 077 && head -c 1024 /dev/urandom >"$S/munge/munge.key")
chmod 600 "$S/munge/munge.key"
mn_exec hA munged --socket="$S/munge/munge.socket" --key-file="$S/munge/munge.key" \
  --pid-file="$S/munge/munged.pid" --log-file="$L/munged.log" --seed-file="$S/munge/munged.seed"
munged_pid=$(pidof_file "$S/munge/munged.pid") && alive munged "$munged_pid" \
  || { bad "munged started inside hA"; tail -n 5 "$L/munged.log"; finish; }
# The socket is a file: reached from hB (another network namespace) too?
mn_exec hB sh -c "munge -n -S '$S/munge/munge.socket' | unmunge -S '$S/munge/munge.socket'" >/dev/null 2>&1 \
  || skip_all "munge credentials cannot be fetched from hB through $S/munge/munge.socket"
# Inside a host, /sys is the fresh sysfs `ip netns exec` mounts: no /sys/fs/cgroup, and
# slurmd then refuses to start ("No filesystem mounted on /sys/fs/cgroup ... slurmd
# initialization failed"), though no cgroup plugin is configured. Mount the machine's v1
# controllers (the same hierarchies) there, in the host's own mount namespace (gone with it).
cgmounts=$(awk '$3 == "cgroup" && $2 ~ "^/sys/fs/cgroup/" { sub("^/sys/fs/cgroup/", "", $2); print $2 " " $4 }' /proc/mounts)
for h in hA hB; do
  mn_exec "$h" sh -c 'mkdir -p /dev/shm/lora_slurm_tmp && mount -t tmpfs -o mode=755 cgroup_root /sys/fs/cgroup &&
    echo "$0" | while read -r d o; do [ -n "$d" ] || continue; mkdir -p "/sys/fs/cgroup/$d" && mount -t cgroup -o "$o" cgroup "/sys/fs/cgroup/$d"; done' \
    "$cgmounts" || say "warning: could not mount cgroup hierarchies in $h"
done
mn_exec hA slurmctld -f "$SLURM_CONF"
mn_exec hA slurmd -f "$SLURM_CONF" -N nodeA
mn_exec hB slurmd -f "$SLURM_CONF" -N nodeB
ctld_pid=$(pidof_file "$S/run/slurmctld.pid") sdA=$(pidof_file "$S/run/slurmd.nodeA.pid") sdB=$(pidof_file "$S/run/slurmd.nodeB.pid")
check "daemons: munged $munged_pid, slurmctld ${ctld_pid:-?} in hA; slurmd ${sdA:-?} (nodeA) in hA, ${sdB:-?} (nodeB) in hB" \
  bash -c "[[ \"\$(cat /proc/${ctld_pid:-0}/comm 2>/dev/null) \$(cat /proc/${sdA:-0}/comm 2>/dev/null) \$(cat /proc/${sdB:-0}/comm 2>/dev/null)\" == 'slurmctld slurmd slurmd' ]] \
    && ip netns pids $(mn_ns hA) | grep -qx '${sdA:-x}' && ip netns pids $(mn_ns hB) | grep -qx '${sdB:-x}'"
[[ "$(cat /proc/"${sdA:-0}"/comm /proc/"${sdB:-0}"/comm 2>/dev/null | tr '\n' ' ')" == "slurmd slurmd " ]] || finish
states=""
for ((i = 0; i < 300; i++)); do
  states=$(sc sinfo -h -N -o '%N=%T' 2>/dev/null | sort | tr '\n' ' ')
  [[ $states == "nodeA=idle nodeB=idle " ]] && break
  sleep 0.1
done
check "cluster: both nodes idle in partition 'two' after $((SECONDS - t_up)) s (sinfo: $states)" test "$states" == "nodeA=idle nodeB=idle "
[[ $states == "nodeA=idle nodeB=idle " ]] || finish
sc sinfo | sed 's/^/    /'

# ---- the job ---------------------------------------------------------------------------------
job=$(cd "$J" && sc sbatch --parsable --job-name=lora-2node --nodes=2 --ntasks-per-node=2 --chdir="$J" \
  --export=ALL,LORA_DIST="$bin",OMP_NUM_THREADS=1,OMPI_MCA_mpi_yield_when_idle=1 \
  "$repo/launch/slurm/train_multi_node.sbatch" "$run" 2>"$L/sbatch.err")
job=${job%%;*}
[[ $job =~ ^[0-9]+$ ]] || { bad "sbatch: '$job' $(cat "$L/sbatch.err")"; job=""; finish; }
log=$J/logs/lora-2node-$job.out
say "submitted job $job: --nodes=2 --ntasks-per-node=2, tp 2 x dp 2 (log $log)"
field() { { sc scontrol show job "$job" 2>/dev/null || true; } | tr ' ' '\n' | sed -n "s/^$1=//p" | head -n 1; }
train_steps() { [[ -f $work/out_run/metrics.jsonl ]] && grep '"type":"train"' "$work/out_run/metrics.jsonl" | grep -o '"step":[0-9]*' | cut -d: -f2; }
ranks() { # "rank:node:host" of every lora_dist process of the job in the hosts, sorted by rank
  local h p r n
  for h in hA hB; do
    for p in $(ip netns pids "$(mn_ns "$h")"); do
      [[ "$(cat /proc/"$p"/comm 2>/dev/null)" == lora_dist ]] || continue
      r=$(tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | sed -n 's/^SLURM_PROCID=//p')
      n=$(tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | sed -n 's/^SLURMD_NODENAME=//p')
      [[ -n $r ]] && echo "$r:$n:$h"   # not the reference run (no SLURM_PROCID)
    done
  done | sort -n | tr '\n' ' '
}

rank_tcp() { # established TCP connections (state 01) of the ranks in hA to hB's address
  local p inodes=" "
  for p in $(ip netns pids "$(mn_ns hA)"); do
    [[ "$(cat /proc/"$p"/comm 2>/dev/null)" == lora_dist ]] || continue
    tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -q "^SLURM_JOB_ID=$job\$" || continue
    inodes+=$(find /proc/"$p"/fd -lname 'socket:*' -printf '%l ' 2>/dev/null | tr -dc '0-9 ')" "
  done
  ip netns exec "$(mn_ns hA)" cat /proc/net/tcp | awk -v b="$hexB" -v ino="$inodes" \
    '$4 == "01" && index($3, b ":") == 1 && index(ino, " " $10 " ") { n++ } END { print n + 0 }'
}
# First run: until a checkpoint exists (and the ranks are seen on both hosts).
placement="" t_sub=$SECONDS ntcp=0
hexB=$(awk -F. '{ printf "%02X%02X%02X%02X", $4, $3, $2, $1 }' <<<"$ipB")   # as in /proc/net/tcp
for ((i = 0; i < 900; i++)); do   # 90 s at most
  st=$(field JobState)
  [[ $st == PENDING || $st == RUNNING || $st == CONFIGURING ]] || break
  if (($(wc -w <<<"$placement") < 4)); then
    placement=$(ranks)
  fi
  ck=$(find "$work/out_run/checkpoints" -maxdepth 1 -name 'step_*.h5' 2>/dev/null | wc -l)
  if ((ck >= 1)) && (($(wc -w <<<"$placement") >= 4)); then ntcp=$(rank_tcp); break; fi
  sleep 0.1
done
last=$(train_steps | tail -n 1)
say "first run: state $st, step ${last:-none}, checkpoints: $(ls "$work/out_run/checkpoints" 2>/dev/null | tr '\n' ' ')after $((SECONDS - t_sub)) s"
check "placement: ranks 0,1 on nodeA (host hA), 2,3 on nodeB (host hB) (rank:node:host: $placement)" \
  test "$placement" == "0:nodeA:hA 1:nodeA:hA 2:nodeB:hB 3:nodeB:hB "
check "network: the ranks in hA hold $ntcp established TCP connections to hB (MPI across the hosts)" test "$ntcp" -ge 2
if [[ $st != RUNNING ]] || ((${ck:-0} < 1)) || ((${last:-0} >= steps)); then
  bad "first run: no checkpoint while the job ran (JobState $st, step ${last:-none} of $steps)"
  finish
fi

# ---- USR1 to the batch shell -------------------------------------------------------------------
sc scancel --signal=USR1 --batch "$job" || bad "scancel --signal=USR1 --batch $job"
t_sig=$SECONDS
say "sent USR1 to the batch shell of job $job at step $last"
for ((i = 0; i < 300; i++)); do   # 60 s
  restarts=$(field Restarts) st=$(field JobState)
  [[ ${restarts:-0} == 1 ]] && break
  [[ $st == PENDING || $st == RUNNING || $st == REQUEUED || $st == COMPLETING ]] || break
  sleep 0.2
done
n_first=$(train_steps | wc -l)
S_stop=$(train_steps | tail -n 1)
check "requeue: Restarts=${restarts:-?} (JobState $st) $((SECONDS - t_sig)) s after USR1" test "${restarts:-0}" == 1
t_rq=$SECONDS
for ((i = 0; i < 240; i++)); do   # 120 s
  st=$(field JobState)
  [[ $st == PENDING || $st == RUNNING || $st == REQUEUED || $st == COMPLETING || $st == CONFIGURING ]] || break
  sleep 0.5
done
say "job $job: JobState=$st ExitCode=$(field ExitCode) Restarts=$(field Restarts) $((SECONDS - t_rq)) s after the requeue"
check "job: COMPLETED with ExitCode 0:0 and Restarts=1 (got $st $(field ExitCode) Restarts=$(field Restarts))" \
  test "$st $(field ExitCode) $(field Restarts)" == "COMPLETED 0:0 1"

# ---- the job log -----------------------------------------------------------------------------------
first_log=$(sed '/SLURM_RESTART_COUNT=1/,$d' "$log" 2>/dev/null)
second_log=$(sed -n '/SLURM_RESTART_COUNT=1/,$p' "$log" 2>/dev/null)
grep -E '^lora_job: job|exit code|Exited|resumed from|preempted' "$log" 2>/dev/null | sed 's/^/    /'
check "log: the job ran on 2 nodes [nodeA,nodeB], batch shell on hA" \
  grep -q "on hA at .*: 4 tasks on 2 node(s) \[nodeA,nodeB\]" <<<"$first_log"
check "log: srun names both nodes with their tasks (nodeA: tasks 0-1, nodeB: tasks 2-3, exit 75)" \
  bash -c "grep -q 'nodeA: tasks 0-1: Exited with exit code 75' <<<\"\$1\" && grep -q 'nodeB: tasks 2-3: Exited with exit code 75' <<<\"\$1\"" _ "$first_log"
check "log: first run: SLURM_RESTART_COUNT unset, got SIGUSR1, trainer exit 75, requeued" \
  bash -c "grep -q 'SLURM_RESTART_COUNT unset' <<<\"\$1\" && grep -q 'got SIGUSR1' <<<\"\$1\" && grep -q 'trainer exited with status 75' <<<\"\$1\" && grep -q 'requeueing job $job' <<<\"\$1\"" _ "$first_log"
resume_line=$(grep -m1 'resumed from' <<<"$second_log")
check "log: restarted run (SLURM_RESTART_COUNT=1) resumed from the stop checkpoint step_$(printf %08d "${S_stop:-0}").h5 ($resume_line)" \
  bash -c "grep -q 'resumed from .*step_0*${S_stop:-x}\.h5 at step ${S_stop:-x}' <<<\"\$1\"" _ "$second_log"
check "log: restarted run finished (trainer exit 0)" bash -c "grep -q 'training finished' <<<\"\$1\"" _ "$second_log"

# ---- the losses ---------------------------------------------------------------------------------------
mapfile -t all < <(train_steps)
second=("${all[@]:${n_first:-0}}")
check "metrics: first run steps 1..${S_stop:-?}, second run $((${S_stop:-0} + 1))..$steps (got ${second[0]:-none}..${second[-1]:-none})" \
  test "${all[0]:-x} ${second[0]:-x} ${second[-1]:-x}" == "1 $((${S_stop:-0} + 1)) $steps"
for ((i = 0; i < 600; i++)); do kill -0 "$ref_pid" 2>/dev/null || break; sleep 0.1; done   # 60 s
if kill -0 "$ref_pid" 2>/dev/null; then mn_kill KILL hB; fi
wait "$ref_pid"; ref_rc=$?
check "reference: one-rank run exit status $ref_rc is 0" test "$ref_rc" == 0
cmp_out=$(python3 - "$work/out_run/metrics.jsonl" "$work/out_ref/metrics.jsonl" "${n_first:-0}" 1e-5 <<'EOF'
import json, sys
def records(p):
    return [(r["step"], r["loss"]) for r in map(json.loads, open(p)) if r.get("type") == "train"]
a, b, n1, tol = records(sys.argv[1]), dict(records(sys.argv[2])), int(sys.argv[3]), float(sys.argv[4])
def worst(rs):
    return max((abs(l - b[s]) / max(abs(b[s]), 1e-30) for s, l in rs if s in b), default=float("inf"))
after = a[n1:]
complete = bool(b) and sorted({s for s, _ in a}) == list(range(1, max(b) + 1)) == sorted(b)
w1, w2 = worst(a[:n1]), worst(after)
print(f"before the stop {w1:.2e} over {n1} steps, after the resume {w2:.2e} over {len(after)} steps"
      + ("" if complete else ", NOT every step 1..last"))
sys.exit(0 if complete and after and w1 <= tol and w2 <= tol else 1)
EOF
)
cmp_rc=$?
check "losses = the uninterrupted one-rank run (rel 1e-5): $cmp_out" test "$cmp_rc" == 0
say "TIMING cluster up $((t_sub - t_up)) s; submit -> checkpoint+signal $((t_sig - t_sub)) s; USR1 -> requeued $((t_rq - t_sig)) s; requeue -> COMPLETED $((SECONDS - t_rq)) s"

# ---- a lost link under Slurm -----------------------------------------------------------------
# The shipped sbatch script, nodeB's link cut mid-run, with each launcher it offers (srun, and
# mpirun inside the allocation): the watchdog (parallel.timeout_s) ends the ranks on both sides;
# the launcher must then end the step and the batch script the job within timeout_s + 30 s,
# not wait for slurmctld to declare nodeB down (SlurmdTimeout: 300 s by default, 30 here) or
# for TCP keepalive's defaults (mpirun: launch/launch_lib.sh, lora_mpi_lost_link_settings).
tmo=8
sed -e "s|^parallel: .*|parallel: {tp: 2, dp: 2, timeout_s: $tmo}|" -e "s|out_run|out_cut|" \
  -e "s|steps: $steps,|steps: 100000,|" "$run" >"$work/cut.yaml"
cut_steps() { local n=0; [[ -f $work/out_cut/metrics.jsonl ]] && n=$(grep -c '"type":"train"' "$work/out_cut/metrics.jsonl"); echo "${n:-0}"; }
job_procs() { # srun, mpirun and lora_dist processes of job $1 left in hA
  local p n=0
  for p in $(ip netns pids "$(mn_ns hA)"); do
    case "$(cat /proc/"$p"/comm 2>/dev/null)" in
      srun | mpirun | lora_dist) tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -q "^SLURM_JOB_ID=$1\$" && n=$((n + 1)) ;;
    esac
  done
  echo $n
}
for launcher in srun mpirun; do
  rm -rf "$work/out_cut"
  job2=$(cd "$J" && sc sbatch --parsable --job-name=lora-cut --nodes=2 --ntasks-per-node=2 --chdir="$J" --no-requeue \
    --export=ALL,LORA_DIST="$bin",LAUNCHER=$launcher,OMP_NUM_THREADS=1,OMPI_MCA_mpi_yield_when_idle=1 \
    "$repo/launch/slurm/train_multi_node.sbatch" "$work/cut.yaml" 2>"$L/sbatch_cut.err")
  job2=${job2%%;*}
  for ((i = 0; i < 600; i++)); do (($(cut_steps) >= 2)) && break; sleep 0.1; done   # 60 s
  if (($(cut_steps) < 2)); then
    bad "lost link ($launcher): job $job2 made no progress before the cut (state $(job=$job2 field JobState))"
    sc scancel "$job2" 2>/dev/null
    continue
  fi
  mn_link down hB
  t_cut=$SECONDS
  for ((i = 0; i < 1200; i++)); do   # 120 s
    (($(job_procs "$job2") == 0)) && break
    sleep 0.1
  done
  t_gone=$((SECONDS - t_cut))
  say "TIMING lost link under Slurm ($launcher): its launcher and every rank of job $job2 in hA gone $t_gone s after the cut"
  grep -E 'lora_job: trainer exited|srun: error|Exited|watchdog' "$J/logs/lora-cut-$job2.out" 2>/dev/null | head -n 6 | sed 's/^/    /'
  check "lost link ($launcher): the launcher and the ranks on nodeA gone within timeout_s + 30 = $((tmo + 30)) s of the cut (took $t_gone s)" \
    test "$t_gone" -le $((tmo + 30))
  check "lost link ($launcher): the job log says the trainer exited non-zero" \
    grep -qE 'trainer exited with status [1-9]' "$J/logs/lora-cut-$job2.out"
  mn_link up hB
  sc scancel "$job2" 2>/dev/null
  for ((i = 0; i < 300; i++)); do [[ $(sc sinfo -h -N -o '%T' 2>/dev/null | sort -u | tr '\n' ' ') == "idle " ]] && break; sleep 0.2; done
done
finish
