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
