# Shell helpers shared by launch/mpirun.sh and launch/slurm/lora_job.sh (sourced, not run).

# CPUs this process may run on. Plain `nproc` would answer OMP_NUM_THREADS when that is set.
lora_cores() { env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc; }

# A value from run.yaml, block (`parallel:\n  tp: 2`) or flow (`parallel: {tp: 2}`) style.
# Only for the scripts' checks and messages: the trainer's own loader is the authority.
lora_yaml_get() { # file section key
  awk -v sec="$2" -v key="$3" '
    { sub(/[ \t]*#.*$/, "") }
    /^[A-Za-z_][A-Za-z0-9_]*:/ {
      cur = $0; sub(/:.*/, "", cur)
      if (cur == sec && match($0, /\{.*\}/)) {
        body = substr($0, RSTART + 1, RLENGTH - 2); n = split(body, kv, ",")
        for (i = 1; i <= n; i++) {
          k = kv[i]; sub(/:.*/, "", k); gsub(/[ \t]/, "", k)
          v = kv[i]; sub(/^[^:]*:/, "", v); gsub(/^[ \t"]+|[ \t"]+$/, "", v)
          if (k == key) { print v; exit }
        }
      }
      next
    }
    cur == sec && /^[ \t]+[A-Za-z_]+:/ {
      k = $0; sub(/:.*/, "", k); gsub(/[ \t]/, "", k)
      if (k == key) { v = $0; sub(/^[^:]*:/, "", v); gsub(/^[ \t"]+|[ \t"]+$/, "", v); print v; exit }
    }' "$1" 2>/dev/null
}

# The scheduling and plugin lines of the test suite's private Slurm clusters (one node:
# launch/slurm_localhost.sh; two: tests/multinode/test_slurm_two_nodes.sh), after the paths.
lora_slurm_conf_policy() {
  cat <<'CONF'
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
# Pick up an eligible (e.g. requeued) job within ~1 s instead of 5-28 s.
SchedulerParameters=sched_interval=2,bf_interval=1
# Debian's Open MPI speaks PMIx only: plain srun works for MPI programs with this.
MpiDefault=pmix
ReturnToService=2
EnforcePartLimits=ALL
SlurmctldTimeout=30
SlurmdTimeout=30
MessageTimeout=10
InactiveLimit=0
KillWait=5
MinJobAge=300
# Advertise the CPUs the node line gives whatever the hardware has, so a few ranks fit.
SlurmdParameters=config_overrides
CONF
}

# Across hosts, Open MPI's runtime (mpirun and each host's orted) notices a lost link only
# through TCP keepalive, and its defaults (300 s idle + 9 probes x 20 s; the kernel's if unset)
# keep mpirun and a cut-off host's orted alive for up to ~15 minutes after lora_dist's
# watchdog has ended every rank. Probe after 10 s idle, every 2 s, 3 times: the job ends
# about 20 s after its ranks. Exported, so mpirun, its daemons and the ranks all see them;
# values the caller set win. (Plain mpirun needs the same three: docs/failures-and-exit-codes.md.)
lora_mpi_lost_link_settings() {
  export OMPI_MCA_oob_tcp_keepalive_time=${OMPI_MCA_oob_tcp_keepalive_time:-10}
  export OMPI_MCA_oob_tcp_keepalive_intvl=${OMPI_MCA_oob_tcp_keepalive_intvl:-2}
  export OMPI_MCA_oob_tcp_keepalive_probes=${OMPI_MCA_oob_tcp_keepalive_probes:-3}
}
