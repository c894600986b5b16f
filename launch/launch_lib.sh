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
