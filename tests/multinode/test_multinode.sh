#!/usr/bin/env bash
# Multi-host test on one machine (issue 9 point 2): two test hosts hA and hB made by
# tests/multinode/hosts.sh (own network namespace + address, own hostname, own /dev/shm), so
# Open MPI sees two nodes: TCP between them, shared memory (vader) inside each. Cases:
#   1. cross-host run at tp 2 (inside a host) x dp 2 (across hosts): the losses equal a
#      single-rank run of the same config; step time across hosts vs the same 4 ranks on one
#      host; per-step all-reduce bytes.
#   2. the link between the hosts cut mid-run: every process on every host gone, non-zero
#      exit, within parallel.timeout_s + 30 s, every rank's watchdog line; the checkpoints
#      intact; with the link back, a resume continues exactly (losses of the uninterrupted run).
#   3. the processes of hB killed (link up): everything on hA ends within seconds, non-zero.
#   4. packet loss and delay on the link with tc netem (SKIPPED, loudly, where the kernel has no
#      netem) and, as a stand-in that this kernel has, a tbf rate limit with a tiny queue that
#      drops packets: same losses, only slower.
# Prints ok/FAIL per check, SKIP lines, then "multinode: N passed, M failed"; exit 0 only if
# everything passed, 77 (ctest SKIP_RETURN_CODE) when this machine cannot create namespaces.
# Everything it creates (namespaces, veths, bridge, holders, processes, /etc/hosts lines) is
# removed by hosts.sh down in the EXIT trap, by PID (every process in our namespaces).
#
#   tests/multinode/test_multinode.sh BIN REPO WORK
# Env: LORA_MN_STEPS (steps of the runs, default 200), LORA_MN_TIMEOUT_S (parallel.timeout_s
# of the link-down run, default 5), LORA_MN_PREFIX / LORA_MN_NET (see hosts.sh).
set -u
bin=${1:?usage: test_multinode.sh BIN REPO WORK} repo=${2:?REPO} work=${3:?WORK}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
t_start=$SECONDS
say() { printf '[%3ds] %s\n' $((SECONDS - t_start)) "$*"; }

# A previous run's hosts (killed by a ctest timeout before its trap ran) go first.
export LORA_MN_STATE=$work/hosts
# shellcheck source=tests/multinode/hosts.sh
source "$here/hosts.sh"
[[ -f $MN_STATE/state ]] && mn_down
rm -rf -- "$work" && mkdir -p "$work" && chmod 755 "$work"

if ! why=$(mn_probe); then
  echo "SKIP multinode.cross_host: this machine cannot make test hosts: $why"
  echo "SKIP (needs root with network, UTS and mount namespaces: ip netns, veth, unshare)"
  echo "multinode: 0 passed, 0 failed, SKIPPED"
  exit 77
fi

passed=0 failed=0 skipped=0
ok() { echo "ok   $*"; passed=$((passed + 1)); }
bad() { echo "FAIL $*"; failed=$((failed + 1)); }
skip() { echo "SKIP ******** $* ********"; skipped=$((skipped + 1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }

cleanup() {
  local rc=$?
  trap - EXIT
  mn_down
  # Anything of ours outside the namespaces (should be none): match this run's work dir.
  local p
  for p in $(pgrep -f -- "$work/" 2>/dev/null); do [[ $p != "$$" ]] && kill -KILL "$p" 2>/dev/null; done
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mn_up 2 >/dev/null 2>&1 || { bad "hosts.sh up 2"; echo "multinode: $passed passed, $failed failed"; exit 1; }
agent=$(mn_agent)
export OMP_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# 4 ranks on 2 shared cores: ranks waiting in a collective must yield, not busy-poll.
export OMPI_MCA_mpi_yield_when_idle=1
# The multi-host launch line. After a cut, mpirun and the orted of the cut-off host notice
# the dead link only through TCP: the keepalive settings below for idle connections (10 + 2*3
# = 16 s; Open MPI's default 300 + 20*9 s) and, for connections with data in flight,
# net.ipv4.tcp_retries2 (the kernel's default 15 in the test hosts: ~15 min). lora_dist keeps
# its watchdog's limit above the keepalive window, so the runtime ends the job before any rank
# sends towards the lost host (docs/failures-and-exit-codes.md, "Plain mpirun across hosts").
mpirun_args=(--mca plm_rsh_agent "$agent" --map-by slot --bind-to none
  --mca btl_tcp_if_include "$MN_NET.0/24" --mca oob_tcp_if_include "$MN_NET.0/24"
  --mca oob_tcp_keepalive_time 10 --mca oob_tcp_keepalive_intvl 2 --mca oob_tcp_keepalive_probes 3
  -x OMP_NUM_THREADS -x OMPI_MCA_mpi_yield_when_idle)
steps=${LORA_MN_STEPS:-200}
tmo=${LORA_MN_TIMEOUT_S:-5}
tol=1e-5   # relative, losses across layouts (the recipe saw ~1e-8); same layout: 1e-12

# Does this binary know parallel.timeout_s (the watchdog, issue 9 point 1)?
watchdog=0
grep -qa 'timeout_s' "$bin" && watchdog=1

config() { # NAME TP DP [PARALLEL_EXTRA [yaml lines...]]: the shared tiny model; prints the path
  local name=$1 tp=$2 dp=$3 par=${4:-}
  shift 3; (($#)) && shift
  {
    cat <<EOF
model: {n_layer: 2, n_head: 4, d_model: 64, vocab_size: 256, context: 32, init: seed, init_seed: 7, init_std: 0.1}
lora: {r: 4, alpha: 8, dropout: 0.05, targets: all}
optim: {lr: 2.0e-3, warmup_steps: 10, decay: cosine}
data: {train: $repo/data/demo_train.bin}
train: {steps: $steps, batch_size: 8, micro_batch: 2, seq_len: 32, eval_every: 0, eval_batches: 1, log_every: 50, seed: 3, threads: 1}
parallel: {tp: $tp, dp: $dp${par:+, $par}}
output: {dir: $work/out_$name}
EOF
    local l; for l in "$@"; do echo "$l"; done
  } >"$work/$name.yaml"
  echo "$work/$name.yaml"
}

# run_bg NAME HOSTSPEC NP YAML [mpirun args...]: mpirun inside hA, in the background; sets $job
# ($job is mpirun itself, inside hA: hosts.sh exec replaces itself with it).
run_bg() {
  local name=$1 hosts=$2 np=$3 yaml=$4; shift 4
  "$here/hosts.sh" exec hA mpirun "${mpirun_args[@]}" --host "$hosts" -np "$np" "$@" \
    "$bin" --yaml "$yaml" >"$work/$name.log" 2>&1 </dev/null &
  job=$!
}
# wait_job PID LIMIT_S: wait for it; rc in $rc (124 and everything killed when over the limit)
wait_job() {
  local pid=$1 limit=$2 t0=$SECONDS
  while kill -0 "$pid" 2>/dev/null && ((SECONDS - t0 < limit)); do sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then mn_kill KILL; wait "$pid" 2>/dev/null; rc=124; return; fi
  wait "$pid"; rc=$?
}
run_fg() { # NAME HOSTSPEC NP YAML LIMIT: run to the end
  run_bg "$1" "$2" "$3" "$4"
  wait_job "$job" "$5"
}
others() { # processes in the hosts other than the holders
  local keep=" " h p
  for h in $(mn_hosts); do keep+="$(mn_holder "$h") "; done
  for p in $(mn_pids); do [[ $keep == *" $p "* ]] || echo "$p"; done
}
metric_step() { # YAML-NAME: the newest train step in its metrics (0 if none)
  local s; s=$(grep -o '"step":[0-9]*,"step_seconds' "$work/out_$1/metrics.jsonl" 2>/dev/null | tail -n 1 | tr -dc '0-9')
  echo "${s:-0}"
}

# compare A B TOL: every train record of metrics A (a resumed run's repeated steps too) has B's
# loss of that step to TOL relative, and A covers every step of B; prints "max rel diff X over N steps". metrics_stats M: median step time and bytes.
compare() {
  python3 - "$@" <<'EOF'
import json, sys
def records(p):  # every train record, in file order (a resumed run repeats some steps)
    return [(r["step"], r["loss"]) for r in map(json.loads, open(p)) if r.get("type") == "train"]
a, b, tol = records(sys.argv[1]), dict(records(sys.argv[2])), float(sys.argv[3])
steps = sorted({s for s, _ in a})
missing = [s for s in steps if s not in b]
worst = max((abs(l - b[s]) / max(abs(b[s]), 1e-30) for s, l in a if s in b), default=float("inf"))
complete = bool(b) and steps == list(range(1, max(b) + 1))
print(f"max rel diff {worst:.2e} over {len(a)} records of steps {steps[0] if steps else '-'}..{steps[-1] if steps else '-'}"
      + (f", {len(missing)} steps missing" if missing else "") + ("" if complete else ", NOT every step 1..last"))
sys.exit(0 if complete and not missing and worst <= tol else 1)
EOF
}
same_losses() { compare "$@" >/dev/null; }
metrics_stats() {
  python3 - "$1" <<'EOF'
import json, statistics, sys
r = [json.loads(l) for l in open(sys.argv[1])]
t = [x for x in r if x.get("type") == "train" and x["step"] > 5]
print(f"{statistics.median(x['step_seconds'] for x in t) * 1e3:.1f} {t[-1]['lora_grad_bytes']} {t[-1]['tp_activation_bytes']}")
EOF
}

say "hosts up: $(for h in $(mn_hosts); do echo -n "$h=$(mn_ip "$h") (holder $(mn_holder "$h")) "; done)"
say "binary $bin; steps $steps; watchdog (parallel.timeout_s) in this build: $([[ $watchdog == 1 ]] && echo yes || echo NO)"

# ---- 0. the hosts are distinct nodes -------------------------------------------------------
check "hosts: hA and hB report their own hostnames" \
  test "$(mn_exec hA hostname) $(mn_exec hB hostname)" == "hA hB"
mn_exec hA sh -c 'touch /dev/shm/lora_mn_probe'
check "hosts: /dev/shm of hA is not that of hB nor the machine's" \
  test -e /proc/"$(mn_holder hA)"/root/dev/shm/lora_mn_probe -a ! -e /dev/shm/lora_mn_probe \
  -a "$(mn_exec hB sh -c 'ls /dev/shm | wc -l')" == 0
mn_exec hA rm -f /dev/shm/lora_mn_probe

# ---- 1. cross-host run vs one rank, and vs one host ----------------------------------------
say "case 1: reference run on 1 rank, then tp 2 x dp 2 across hA+hB, then the same 4 ranks on hA alone"
ref=$(config ref 1 1)
run_fg ref hA:1 1 "$ref" 120
check "one rank: exit status $rc is 0" test "$rc" == 0
cross=$(config cross 2 2)
run_bg cross hA:2,hB:2 4 "$cross"
cross_job=$job
# While it runs: ranks 0,1 on hA and 2,3 on hB (a TP group inside a host), shared-memory
# segments in each host's own /dev/shm, TCP connections between the two addresses.
for _ in $(seq 600); do (($(metric_step cross) >= 5)) && break; kill -0 "$cross_job" 2>/dev/null || break; sleep 0.05; done
placement=""
for p in $(others); do
  [[ "$(cat /proc/"$p"/comm 2>/dev/null)" == lora_dist ]] || continue
  r=$(tr '\0' '\n' <"/proc/$p/environ" | sed -n 's/^OMPI_COMM_WORLD_RANK=//p')
  h=hA; ip netns pids "$(mn_ns hB)" | grep -qx "$p" && h=hB
  placement+="$r:$h "
done
placement=$(tr ' ' '\n' <<<"$placement" | grep . | sort -n | tr '\n' ' ')
check "cross-host: ranks placed 0,1 on hA and 2,3 on hB (got: $placement)" test "$placement" == "0:hA 1:hA 2:hB 3:hB "
shmA=$(ls /proc/"$(mn_holder hA)"/root/dev/shm 2>/dev/null | tr '\n' ' ')
shmB=$(ls /proc/"$(mn_holder hB)"/root/dev/shm 2>/dev/null | tr '\n' ' ')
check "cross-host: shared memory inside each host ($shmA| $shmB)" \
  bash -c "[[ '$shmA' == *vader_segment.hA* && '$shmB' == *vader_segment.hB* && '$shmA' != *.hB.* ]]"
# /proc/net/tcp of hA: established (01) connections to hB's address (0x02<net> little-endian).
hexB=$(printf '%02X%02X%02X%02X' $(echo "$(mn_ip hB)" | awk -F. '{print $4, $3, $2, $1}'))
ntcp=$(ip netns exec "$(mn_ns hA)" cat /proc/net/tcp | awk -v b="$hexB" '$4 == "01" && index($3, b ":") == 1' | wc -l)
check "cross-host: $ntcp TCP connections established from hA to hB" test "$ntcp" -ge 2
wait_job "$cross_job" 180
check "cross-host: exit status $rc is 0" test "$rc" == 0
msg=$(compare "$work/out_cross/metrics.jsonl" "$work/out_ref/metrics.jsonl" $tol)
check "cross-host losses = one-rank losses (rel $tol): $msg" same_losses "$work/out_cross/metrics.jsonl" "$work/out_ref/metrics.jsonl" $tol
one=$(config one 2 2)
run_fg one hA:4 4 "$one" 180
check "one host (4 ranks on hA): exit status $rc is 0" test "$rc" == 0
msg=$(compare "$work/out_one/metrics.jsonl" "$work/out_ref/metrics.jsonl" $tol)
check "one-host losses = one-rank losses (rel $tol): $msg" same_losses "$work/out_one/metrics.jsonl" "$work/out_ref/metrics.jsonl" $tol
read -r t_cross gbytes abytes < <(metrics_stats "$work/out_cross/metrics.jsonl")
read -r t_one _ _ < <(metrics_stats "$work/out_one/metrics.jsonl")
read -r t_ref _ _ < <(metrics_stats "$work/out_ref/metrics.jsonl")
say "TIMING step time (median, steps > 5): cross-host tp2 x dp2 ${t_cross} ms, one host tp2 x dp2 ${t_one} ms, one rank ${t_ref} ms"
say "TIMING per step: LoRA gradient all-reduce ${gbytes} B per rank (the only traffic between hosts at tp inside a host)," \
  "TP activation all-reduces ${abytes} B per rank (inside a host)"

# ---- 2. link cut mid-run ---------------------------------------------------------------------
say "case 2: link of hB cut mid-run (parallel.timeout_s $tmo, checkpoint every 20 steps), then a resume with the link back"
if [[ $watchdog == 1 ]]; then
  ld=$(config linkdown 2 2 "timeout_s: $tmo" "checkpoint: {every: 20, keep_last: 20, resume: auto}")
else
  say "NOTE: $bin has no parallel.timeout_s (watchdog of issue 9 point 1 not built in): running without it; expect FAILs"
  ld=$(config linkdown 2 2 "" "checkpoint: {every: 20, keep_last: 20, resume: auto}")
fi
# --output-filename: each orted writes its ranks' output to files here, so the ranks of the
# cut-off host, whose output can no longer reach mpirun, leave their messages too.
run_bg linkdown hA:2,hB:2 4 "$ld" --output-filename "$work/linkdown_ranks"
ld_job=$job
for _ in $(seq 1200); do
  (($(metric_step linkdown) >= 30)) && break
  kill -0 "$ld_job" 2>/dev/null || break
  sleep 0.05
done
cut_step=$(metric_step linkdown)
if ! kill -0 "$ld_job" 2>/dev/null || ((cut_step >= steps)); then
  bad "link down: the run ended (step $cut_step of $steps) before the link could be cut; raise LORA_MN_STEPS"
else
  mn_link down hB
  t0=$SECONDS
  limit=$((tmo + 30))
  # Every process on both hosts (mpirun, orteds, ranks) must be gone within the limit; past it
  # (+10 s) the test kills them itself.
  t_ranks=""
  while (($(others | wc -l) > 0)) && ((SECONDS - t0 < limit + 10)); do
    if [[ -z $t_ranks ]] && ! others | while read -r p; do cat /proc/"$p"/comm 2>/dev/null; done | grep -qx lora_dist; then
      t_ranks=$((SECONDS - t0))
    fi
    sleep 0.2
  done
  t_end=$((SECONDS - t0))
  t_ranks=${t_ranks:-$t_end}
  left=$(others | while read -r p; do echo -n "$p:$(cat /proc/"$p"/comm 2>/dev/null)@$(ip netns identify "$p" 2>/dev/null) "; done)
  wait_job "$ld_job" 1
  ld_rc=$rc
  say "TIMING link cut at step $cut_step: every rank gone after $t_ranks s, every process after $t_end s; mpirun status $ld_rc"
  check "link down: every rank (lora_dist) on both hosts gone within timeout_s + 30 = $limit s (took $t_ranks s)" \
    test "$t_ranks" -le "$limit"
  check "link down: every process on both hosts (mpirun, orted) gone within $limit s (took $t_end s; left: ${left:-none})" \
    test -z "$left" -a "$t_end" -le "$limit"
  check "link down: mpirun exit status $ld_rc is non-zero" test "$ld_rc" -ne 0
  nwd=0
  for r in 0 1 2 3; do
    f=$(ls "$work"/linkdown_ranks/*/rank.$r/stderr 2>/dev/null | head -n 1)
    [[ -n $f ]] && grep -q "lora_dist: rank $r: watchdog" "$f" && nwd=$((nwd + 1))
  done
  grep -h 'watchdog' "$work"/linkdown_ranks/*/rank.*/stderr 2>/dev/null | head -n 4 | sed 's/^/    /'
  # With the keepalive settings the watchdog's limit stays above their window (16 s + 4;
  # trainer/machine/mpi_launch.h), so Open MPI's runtime usually ends the job first; either way
  # the end is explained: every rank's watchdog message, or the runtime's.
  lost=$(grep -c 'ORTE has lost communication with a remote daemon' "$work/linkdown.log" 2>/dev/null)
  check "link down: the end is explained: $nwd of 4 ranks printed 'lora_dist: rank R: watchdog: ...', mpirun says 'ORTE has lost communication with a remote daemon' ${lost:-0} time(s)" \
    test "$nwd" == 4 -o "${lost:-0}" -ge 1
  mn_link up hB
  ckpts=$(cd "$work/out_linkdown/checkpoints" 2>/dev/null && ls step_*.h5 2>/dev/null | tr '\n' ' ')
  newest=$(tr ' ' '\n' <<<"$ckpts" | grep . | tail -n 1)
  newest_step=$(sed -n 's/^step_0*\([0-9][0-9]*\)\.h5$/\1/p' <<<"$newest")
  check "link down: checkpoints written before the cut (step $cut_step): $ckpts" test -n "$newest_step" -a "${newest_step:-0}" -le "$((cut_step + 20))"
  # Intact = a resume takes the newest one without a warning about a damaged file, and the
  # losses from there on are those of the uninterrupted run.
  run_bg linkdown_resume hA:2,hB:2 4 "$ld"
  wait_job "$job" 180
  check "link back: resumed run exit status $rc is 0" test "$rc" == 0
  rl=$(grep -m1 'resumed from' "$work/linkdown_resume.log")
  check "link back: resumed from the newest checkpoint $newest ($rl)" grep -q "resumed from .*$newest at step $newest_step" "$work/linkdown_resume.log"
  check "link back: no checkpoint reported damaged" bash -c "! grep -qiE 'damaged|skipp|corrupt|checkpoint error' '$work/linkdown_resume.log'"
  msg=$(compare "$work/out_linkdown/metrics.jsonl" "$work/out_cross/metrics.jsonl" 1e-12)
  check "link back: losses of every step (before the cut and after the resume) = the uninterrupted cross-host run (rel 1e-12): $msg" \
    same_losses "$work/out_linkdown/metrics.jsonl" "$work/out_cross/metrics.jsonl" 1e-12
fi

# ---- 3. one host's processes killed ------------------------------------------------------------
say "case 3: every process of hB killed (SIGKILL) mid-run"
kh=$(config killhost 2 2)
run_bg killhost hA:2,hB:2 4 "$kh"
kh_job=$job
for _ in $(seq 1200); do (($(metric_step killhost) >= 20)) && break; kill -0 "$kh_job" 2>/dev/null || break; sleep 0.05; done
kh_step=$(metric_step killhost)
if ! kill -0 "$kh_job" 2>/dev/null || ((kh_step >= steps)); then
  bad "host killed: the run ended (step $kh_step) before hB could be killed"
else
  victims=$(ip netns pids "$(mn_ns hB)" | grep -vx "$(mn_holder hB)" | tr '\n' ' ')
  # shellcheck disable=SC2086
  kill -KILL $victims 2>/dev/null
  t0=$SECONDS
  while (($(others | wc -l) > 0)) && ((SECONDS - t0 < 60)); do sleep 0.1; done
  t_end=$((SECONDS - t0))
  left=$(others | tr '\n' ' ')
  wait_job "$kh_job" 1
  say "killed hB's processes ($victims) at step $kh_step; hA empty after $t_end s; mpirun status $rc"
  check "host killed: every process on hA gone within 20 s (took $t_end s; left: ${left:-none})" test -z "$left" -a "$t_end" -le 20
  check "host killed: mpirun exit status $rc is non-zero" test "$rc" -ne 0
fi

# ---- 4. loss and delay on the link -------------------------------------------------------------
say "case 4: packet loss and delay on the link"
netem_err=$(mn_qdisc hA add netem delay 5ms 1ms loss 2% 2>&1)
if [[ $? == 0 ]]; then
  mn_qdisc hB add netem delay 5ms 1ms loss 2%
  shaped=netem; shape_desc="netem delay 5ms±1ms, loss 2% on both hosts' interfaces"
else
  skip "netem: tc qdisc netem is not available on this kernel ($netem_err): the loss+delay case did NOT run"
  shaped=""
  if mn_qdisc hA add tbf rate 12mbit burst 8kb limit 12kb 2>/dev/null; then
    mn_qdisc hB add tbf rate 12mbit burst 8kb limit 12kb
    shaped=tbf; shape_desc="tbf 12 Mbit/s with a 12 KiB queue (drops packets) on both hosts' interfaces, instead of netem"
  else
    skip "tbf: not available either: no shaped-link case at all"
  fi
fi
if [[ -n $shaped ]]; then
  say "link shaped: $shape_desc"
  sh=$(config shaped 2 2)
  run_fg shaped hA:2,hB:2 4 "$sh" 240
  drops=$(for h in hA hB; do ip netns exec "$(mn_ns "$h")" tc -s qdisc show dev eth0 | grep -o 'dropped [0-9]*'; done | awk '{ n += $2 } END { print n + 0 }')
  mn_qdisc hA del; mn_qdisc hB del
  check "$shaped link: exit status $rc is 0" test "$rc" == 0
  msg=$(compare "$work/out_shaped/metrics.jsonl" "$work/out_cross/metrics.jsonl" 1e-12)
  check "$shaped link: losses = the unshaped cross-host run (rel 1e-12): $msg" \
    same_losses "$work/out_shaped/metrics.jsonl" "$work/out_cross/metrics.jsonl" 1e-12
  read -r t_sh _ _ < <(metrics_stats "$work/out_shaped/metrics.jsonl")
  say "TIMING $shaped link: step ${t_sh} ms vs ${t_cross} ms unshaped; packets dropped by the qdiscs: ${drops:-?}"
  # Slower is reported, not checked: on 2 cores shared with other work the step time of
  # this tiny model varies more between runs than 12 Mbit/s adds (seen: 58 ms shaped vs 72 ms not).
  check "$shaped link: the qdiscs dropped packets (${drops:-0}) and the run still completed" test "${drops:-0}" -gt 0
fi

say "multinode done in $((SECONDS - t_start)) s"
echo "multinode: $passed passed, $failed failed$( ((skipped)) && echo ", $skipped skipped (see SKIP lines)")"
((failed == 0))
