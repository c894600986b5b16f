# The real-Slurm test (issue 4): tests/slurm/test_slurm_requeue.sh brings up a private
# single-node Slurm (munged, slurmctld, slurmd; launch/slurm_localhost.sh) under a temp dir,
# submits launch/slurm/train_single_node.sbatch with 2 tasks, signals it once a checkpoint
# exists and checks the requeued run resumes from it. About 30-60 s. It FAILS, never skips,
# without slurm-wlm and munge (CI runs launch/install_deps.sh first). Label "slurm":
#   ctest --test-dir build -L slurm --output-on-failure
add_test(NAME slurm.requeue_resume
  COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/slurm/test_slurm_requeue.sh)
set_tests_properties(slurm.requeue_resume PROPERTIES
  LABELS slurm
  TIMEOUT 240
  ENVIRONMENT "LORA_DIST=$<TARGET_FILE:lora_dist>")

# Every shipped launch path that starts mpirun gives it the three keepalive settings that end a
# job ~20 s after a lost link (launch/mpirun.sh; the Slurm scripts with LAUNCHER=mpirun), and
# keeps a value the user set. A stub mpirun prints what it got: no MPI job runs, a second.
add_test(NAME slurm.lost_link_settings
  COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/slurm/test_lost_link_settings.sh ${PROJECT_SOURCE_DIR}
          ${CMAKE_CURRENT_BINARY_DIR}/lost_link_settings)
set_tests_properties(slurm.lost_link_settings PROPERTIES LABELS "slurm;launch" TIMEOUT 60)
