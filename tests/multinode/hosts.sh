#!/usr/bin/env bash
# Test hosts on one machine for multi-node MPI (and Slurm) tests: each host is a network
# namespace with its own address, plus a UTS namespace (its own hostname) and a mount
# namespace (its own tmpfs /dev/shm) held by a long-lived holder process, so Open MPI sees
# distinct nodes: TCP between hosts, shared memory within one. Follows
# ../shared/recipes/multi-host-on-one-machine.md.
#
#   hosts.sh up N            create hosts hA, hB (, hC) (N = 2 or 3) on a private switch
#   hosts.sh down            remove exactly what `up` made (processes, namespaces, /etc/hosts lines)
#   hosts.sh exec HOST cmd…  run cmd inside HOST (network + hostname + /dev/shm), e.g. exec hA mpirun …
#   hosts.sh link down|up [HOST…]   cut / restore HOST's cable (default: every host)
#   hosts.sh qdisc HOST add|del ARGS…  tc qdisc on HOST's interface (ARGS after "root")
#   hosts.sh agent           print the path of the rsh agent for --mca plm_rsh_agent
#   hosts.sh pids [HOST…]    PIDs of every process inside the hosts (holders included)
#   hosts.sh probe           exit 0 if this machine can create the namespaces, else print why
#
# Environment: LORA_MN_STATE (state dir, default /tmp/lora_multinode), LORA_MN_PREFIX (namespace
# name prefix, default lmn), LORA_MN_NET (first three octets, default 10.77.0).
# Layout: namespace ${P}_sw holds a bridge br0; host X (A, B, C) is namespace ${P}_hX with
# interface eth0 = $NET.<1,2,3>/24, whose veth peer is port pX on the bridge. Nothing is created
# in the root network namespace, and no address outside $NET.0/24 is used. `link down hB`
# takes port pB down in the switch, so hB's eth0 loses carrier: a cut cable.
# State ($LORA_MN_STATE/state): "ns NAME", "holder HOST PID STARTTIME", "hosts MARKER".
# `down` kills every process whose network namespace is one of ours (ip netns pids), by PID,
# then deletes the namespaces and the /etc/hosts lines carrying this state dir's marker.
# Can be sourced (functions mn_up, mn_down, mn_exec, mn_link, mn_agent, mn_pids, mn_holder)
# or run as a command. Needs root.

MN_STATE=${LORA_MN_STATE:-/tmp/lora_multinode}
MN_PREFIX=${LORA_MN_PREFIX:-lmn}
MN_NET=${LORA_MN_NET:-10.77.0}
MN_HOSTS_ALL=(hA hB hC)
MN_SELF=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")

mn_log() { echo "hosts.sh: $*" >&2; }
mn_ns() { echo "${MN_PREFIX}_$1"; }          # host -> namespace name
mn_ip() { # host -> address
  case $1 in hA) echo "$MN_NET.1" ;; hB) echo "$MN_NET.2" ;; hC) echo "$MN_NET.3" ;; *) return 1 ;; esac
}
mn_port() { echo "p${1#h}"; }                  # host -> switch port name
mn_marker() { echo "# lora_dist-multinode $MN_STATE"; }

mn_starttime() { local s; s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1; s=${s##*) }; set -- $s; echo "${20}"; }

# The holder PID of HOST (checked: alive, same start time as recorded).
mn_holder() {
  local kind h pid st
  [[ -f $MN_STATE/state ]] || return 1
  while read -r kind h pid st; do
    [[ $kind == holder && $h == "$1" ]] || continue
    [[ "$(mn_starttime "$pid")" == "$st" ]] && { echo "$pid"; return 0; }
  done <"$MN_STATE/state"
  return 1
}

mn_hosts() { # hosts that are up, from the state file
  [[ -f $MN_STATE/state ]] || return 0
  awk '$1 == "holder" { print $2 }' "$MN_STATE/state"
}

mn_probe() {
  [[ $(id -u) == 0 ]] || { echo "not root (uid $(id -u)): cannot create network namespaces"; return 1; }
  local t err
  for t in ip unshare nsenter mount; do command -v "$t" >/dev/null || { echo "'$t' not found"; return 1; }; done
  t=${MN_PREFIX}_probe$$
  if ! err=$(ip netns add "$t" 2>&1); then echo "ip netns add failed: $err"; return 1; fi
  if ! err=$(ip -n "$t" link add x0 type veth peer name x1 2>&1); then
    ip netns del "$t" 2>/dev/null; echo "veth pairs cannot be created: $err"; return 1
  fi
  if ! err=$(ip netns exec "$t" unshare --uts --mount --propagation private \
      sh -c 'hostname probe && mount -t tmpfs tmpfs /dev/shm' 2>&1); then
    ip netns del "$t" 2>/dev/null; echo "UTS/mount namespaces or tmpfs mounts are not allowed: $err"; return 1
  fi
  ip netns del "$t" 2>/dev/null
  return 0
}

mn_hosts_file_del() {
  local m; m=$(mn_marker)
  grep -qF -- "$m" /etc/hosts 2>/dev/null || return 0
  local kept; kept=$(grep -vF -- "$m" /etc/hosts)
  # Rewrite in place (/etc/hosts may be a bind mount, which a rename would not replace).
  printf '%s\n' "$kept" >/etc/hosts
}

mn_up() {
  local n=${1:-2} i h ns pid
  [[ $n =~ ^[23]$ ]] || { mn_log "up: N must be 2 or 3"; return 2; }
  if [[ -f $MN_STATE/state ]]; then mn_log "up: $MN_STATE/state exists: taking the old hosts down first"; mn_down; fi
  for h in "${MN_HOSTS_ALL[@]:0:n}" sw; do
    ns=$(mn_ns "$h")
    if ip netns list | awk '{print $1}' | grep -qxF "$ns"; then
      mn_log "up: namespace $ns already exists and is not in $MN_STATE/state: refusing (remove it or set LORA_MN_PREFIX)"
      return 1
    fi
  done
  mkdir -p "$MN_STATE" && chmod 755 "$MN_STATE"
  : >"$MN_STATE/state"
  local sw; sw=$(mn_ns sw)
  ip netns add "$sw" && echo "ns $sw" >>"$MN_STATE/state" || { mn_down; return 1; }
  ip -n "$sw" link set lo up
  ip -n "$sw" link add br0 type bridge && ip -n "$sw" link set br0 up || { mn_down; return 1; }
  for h in "${MN_HOSTS_ALL[@]:0:n}"; do
    ns=$(mn_ns "$h")
    ip netns add "$ns" && echo "ns $ns" >>"$MN_STATE/state" || { mn_down; return 1; }
    ip -n "$ns" link set lo up
    ip -n "$sw" link add "$(mn_port "$h")" type veth peer name eth0 netns "$ns" || { mn_down; return 1; }
    ip -n "$sw" link set "$(mn_port "$h")" master br0
    ip -n "$sw" link set "$(mn_port "$h")" up
    ip -n "$ns" addr add "$(mn_ip "$h")/24" dev eth0
    ip -n "$ns" link set eth0 up
    # How long TCP retransmits unacknowledged data before giving up: Open MPI's runtime
    # (mpirun, orted) notices a dead link only this way once it has something to send
    # (default 15 retries, ~15 min; 5 retries ~13 s). The kernel's default, as on a real
    # cluster, unless LORA_MN_TCP_RETRIES2 says otherwise: the lost-link cases must end the job
    # through keepalive, before anything is in flight. Per namespace: the machine's own is untouched.
    ip netns exec "$ns" sysctl -qw net.ipv4.tcp_retries2="${LORA_MN_TCP_RETRIES2:-15}" 2>/dev/null \
      || mn_log "up: cannot set net.ipv4.tcp_retries2 in $ns (kept the default)"
    # The holder: own hostname and /dev/shm. `ip netns exec` and unshare (no --fork) exec, so
    # $! is the final `sleep` (named by its argument for ps readers).
    ip netns exec "$ns" unshare --uts --mount --propagation private \
      sh -c "hostname $h && mount -t tmpfs -o size=1g tmpfs /dev/shm && exec sleep infinity" \
      </dev/null >/dev/null 2>&1 &
    pid=$!
    disown "$pid" 2>/dev/null   # no "Killed" job notice from this shell at `down`
    for ((i = 0; i < 100; i++)); do   # wait until the holder has set itself up
      [[ "$(cat /proc/$pid/comm 2>/dev/null)" == sleep ]] && break
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.05
    done
    [[ "$(cat /proc/$pid/comm 2>/dev/null)" == sleep ]] || { mn_log "up: holder of $h did not start"; mn_down; return 1; }
    echo "holder $h $pid $(mn_starttime "$pid")" >>"$MN_STATE/state"
  done
  # Name resolution for every host (Open MPI and slurm resolve the names); marked lines only.
  mn_hosts_file_del
  echo "hosts $(mn_marker)" >>"$MN_STATE/state"
  for h in "${MN_HOSTS_ALL[@]:0:n}"; do printf '%s %s %s\n' "$(mn_ip "$h")" "$h" "$(mn_marker)"; done >>/etc/hosts
  mn_write_agent
  # Sanity: each host has its own name and an empty /dev/shm, and reaches the others over TCP.
  for h in "${MN_HOSTS_ALL[@]:0:n}"; do
    [[ "$(mn_exec "$h" hostname)" == "$h" ]] || { mn_log "up: $h does not report hostname $h"; mn_down; return 1; }
  done
  mn_log "up: ${MN_HOSTS_ALL[*]:0:n} on $MN_NET.0/24 (state $MN_STATE)"
}

# The rsh agent Open MPI calls as `agent [options] HOST command words…`.
mn_write_agent() {
  cat >"$MN_STATE/agent" <<EOF
#!/bin/bash
# plm_rsh_agent for the test hosts of $MN_STATE (written by hosts.sh): enters HOST's namespaces.
while [[ \${1:-} == -* ]]; do shift; done
host=\$1; shift
exec env LORA_MN_STATE='$MN_STATE' LORA_MN_PREFIX='$MN_PREFIX' LORA_MN_NET='$MN_NET' \\
  '$MN_SELF' exec "\$host" /bin/sh -c "\$*"
EOF
  chmod 755 "$MN_STATE/agent"
}

mn_agent() { echo "$MN_STATE/agent"; }

mn_exec() { # HOST cmd...
  local h=$1 pid; shift
  pid=$(mn_holder "$h") || { mn_log "exec: no host '$h' up in $MN_STATE"; return 127; }
  # nsenter -m switches the root and cwd to the namespace's; the file systems are the same
  # (a copy of the root mount table), so go back to the caller's directory.
  # As a command (hosts.sh exec), nsenter replaces this shell: the caller's $! is the process
  # itself, inside the host.
  ${MN_EXEC_REPLACE:+exec} nsenter -t "$pid" -u -m -n -- /bin/sh -c 'cd "$0" 2>/dev/null || cd /; exec "$@"' "$PWD" "$@"
}

mn_link() { # down|up [HOST...]
  local what=$1 h; shift
  [[ $what == up || $what == down ]] || { mn_log "link: down or up"; return 2; }
  (($#)) || set -- $(mn_hosts)
  for h in "$@"; do ip -n "$(mn_ns sw)" link set "$(mn_port "$h")" "$what" || return 1; done
  [[ $what == up ]] || return 0
  # Neighbour entries left INCOMPLETE/FAILED by the outage make the first connection after
  # the cable returns fail (seen: the next mpirun's orted could not reach mpirun): forget
  # them, then wait until every host reaches every other (a refused connection to port 9
  # = reachable), 10 s at most.
  local a b i
  for a in $(mn_hosts); do ip -n "$(mn_ns "$a")" neigh flush dev eth0 2>/dev/null; done
  for a in $(mn_hosts); do
    for b in $(mn_hosts); do
      [[ $a == "$b" ]] && continue
      for ((i = 0; i < 20; i++)); do
        ip netns exec "$(mn_ns "$a")" python3 -c 'import socket, sys
s = socket.socket(); s.settimeout(0.5)
sys.exit(0 if s.connect_ex((sys.argv[1], 9)) in (0, 111) else 1)' "$(mn_ip "$b")" 2>/dev/null && break
      done
      ((i < 20)) || { mn_log "link up: $a does not reach $b"; return 1; }
    done
  done
}

mn_qdisc() { # HOST add|del ARGS...
  local h=$1 op=$2; shift 2
  if [[ $op == del ]]; then ip netns exec "$(mn_ns "$h")" tc qdisc del dev eth0 root 2>/dev/null; return 0; fi
  ip netns exec "$(mn_ns "$h")" tc qdisc "$op" dev eth0 root "$@"
}

mn_pids() { # [HOST...]: every process in the hosts' network namespaces
  local h
  (($#)) || set -- $(mn_hosts)
  for h in "$@"; do ip netns pids "$(mn_ns "$h")" 2>/dev/null; done
}

# Kill the processes of HOSTs (default: all), holders excepted unless $MN_KILL_HOLDERS=1.
mn_kill() { # SIGNAL [HOST...]
  local sig=$1 p keep=" " h; shift
  if [[ ${MN_KILL_HOLDERS:-0} != 1 ]]; then for h in $(mn_hosts); do keep+="$(mn_holder "$h") "; done; fi
  for p in $(mn_pids "$@"); do
    [[ $keep == *" $p "* ]] && continue
    kill "-$sig" "$p" 2>/dev/null
  done
  return 0
}

mn_down() {
  [[ -f $MN_STATE/state ]] || { mn_log "down: nothing recorded in $MN_STATE"; return 0; }
  local kind a b c i
  # 1. every process inside our namespaces, by PID (TERM, then KILL), holders last.
  mn_kill TERM
  for ((i = 0; i < 30; i++)); do   # up to 3 s for a clean exit; only the holders left?
    (($(mn_pids | wc -l) <= $(mn_hosts | wc -l))) && break
    sleep 0.1
  done
  mn_kill KILL
  MN_KILL_HOLDERS=1 mn_kill KILL
  for ((i = 0; i < 50; i++)); do [[ -z "$(mn_pids)" ]] && break; sleep 0.1; done
  [[ -z "$(mn_pids)" ]] || mn_log "down: processes still in the namespaces: $(mn_pids | tr '\n' ' ')"
  # 2. namespaces (their veths and the bridge go with them), 3. /etc/hosts lines.
  while read -r kind a b c; do
    [[ $kind == ns ]] && { ip netns del "$a" 2>/dev/null || mn_log "down: could not delete namespace $a"; }
  done <"$MN_STATE/state"
  mn_hosts_file_del
  rm -f -- "$MN_STATE/state" "$MN_STATE/agent"
  rmdir -- "$MN_STATE" 2>/dev/null
  return 0
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  set -u
  cmd=${1:-}; shift || true
  case $cmd in
    up) mn_up "${1:-2}" ;;
    down) mn_down ;;
    exec) (($# >= 2)) || { mn_log "exec HOST cmd..."; exit 2; }; MN_EXEC_REPLACE=1 mn_exec "$@" ;;
    link) mn_link "$@" ;;
    qdisc) mn_qdisc "$@" ;;
    agent) mn_agent ;;
    pids) mn_pids "$@" ;;
    probe) mn_probe ;;
    *) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
  esac
fi
