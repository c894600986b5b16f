#!/usr/bin/env bash
# Every launch path the project ships that starts Open MPI's mpirun gives it the three TCP
# keepalive settings that end a job about 20 s after a lost link (launch/launch_lib.sh,
# lora_mpi_lost_link_settings): launch/mpirun.sh, and the Slurm job scripts with LAUNCHER=mpirun
# (launch/slurm/lora_job.sh); a value the user set wins. A stub `mpirun` first on PATH prints
# what it was given, so no MPI job runs. (srun: Slurm itself ends the step; the two-node
# Slurm test cuts a link under both launchers.)
#   tests/slurm/test_lost_link_settings.sh REPO WORK
set -u
repo=$(cd "${1:?usage: test_lost_link_settings.sh REPO WORK}" && pwd) work=${2:?WORK}
mkdir -p "$work/bin"
cat >"$work/bin/mpirun" <<'STUB'
#!/bin/sh
echo "stub mpirun: keepalive ${OMPI_MCA_oob_tcp_keepalive_time:-unset} ${OMPI_MCA_oob_tcp_keepalive_intvl:-unset} ${OMPI_MCA_oob_tcp_keepalive_probes:-unset}"
STUB
chmod +x "$work/bin/mpirun"
export PATH="$work/bin:$PATH" LORA_DIST=/bin/true
unset OMPI_MCA_oob_tcp_keepalive_time OMPI_MCA_oob_tcp_keepalive_intvl OMPI_MCA_oob_tcp_keepalive_probes
yaml=$repo/launch/examples/demo.yaml
passed=0 failed=0
expect() { # what expected output
  if grep -qx "stub mpirun: keepalive $2" <<<"$3"; then echo "ok   $1"; passed=$((passed + 1))
  else echo "FAIL $1: expected 'keepalive $2', got:"; sed 's/^/    /' <<<"$3"; failed=$((failed + 1)); fi
}
slurm_mpirun() {
  (cd "$work" && LAUNCHER=mpirun SLURM_JOB_ID=1 SLURM_NTASKS=4 bash -c \
    'source "$0/launch/slurm/lora_job.sh"; lora_job_main "$0/launch/slurm/lora_job.sh" "$1"' "$repo" "$yaml" 2>&1)
}
expect "launch/mpirun.sh" "10 2 3" "$(bash "$repo/launch/mpirun.sh" -n 4 "$yaml" 2>&1)"
expect "Slurm job script, LAUNCHER=mpirun" "10 2 3" "$(slurm_mpirun)"
export OMPI_MCA_oob_tcp_keepalive_time=7
expect "launch/mpirun.sh keeps the user's oob_tcp_keepalive_time" "7 2 3" "$(bash "$repo/launch/mpirun.sh" -n 4 "$yaml" 2>&1)"
expect "Slurm job script keeps the user's oob_tcp_keepalive_time" "7 2 3" "$(slurm_mpirun)"
echo "lost_link_settings: $passed passed, $failed failed"
((failed == 0))
