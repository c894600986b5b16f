# Bad layouts and dying ranks end the whole job quickly, naming the rank (issue 3, point 6).
add_test(NAME mpi_rank_failures
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/failure/test_rank_failures.sh $<TARGET_FILE:lora_dist>
          ${PROJECT_SOURCE_DIR} ${CMAKE_CURRENT_BINARY_DIR}/rank_failures)
set_tests_properties(mpi_rank_failures PROPERTIES TIMEOUT 300 LABELS mpi)
# The exit-status contract (README "Errors and exit codes"): non-finite loss stop/skip, memory
# need, bad token shards, command-line errors, preemption through launch/mpirun.sh.
add_test(NAME exit_codes
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/failure/test_exit_codes.sh $<TARGET_FILE:lora_dist>
          ${PROJECT_SOURCE_DIR} ${CMAKE_CURRENT_BINARY_DIR}/exit_codes)
set_tests_properties(exit_codes PROPERTIES TIMEOUT 300 LABELS "mpi;hardening")

# A NaN in a row-parallel base weight at tp 2, 12 times under load (a spinning and an
# allocating process beside the ranks): exit 3 naming file and tensor every time, none hangs.
# The HDF5 probe is a fresh process (io/h5_probe.cpp); its forked predecessor could wait on a
# lock inherited from another thread (H5Probe.FinishesWhileAnotherThreadIsInsideHdf5).
add_test(NAME failure.nan_base_under_load
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/failure/nan_base_under_load.py $<TARGET_FILE:lora_dist>
          ${CMAKE_CURRENT_BINARY_DIR}/nan_base_under_load 12)
set_tests_properties(failure.nan_base_under_load PROPERTIES LABELS "mpi;hardening" TIMEOUT 600 PROCESSORS 2)
