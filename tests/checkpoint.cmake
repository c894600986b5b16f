# Checkpoint / resume / preemption through the real binary over mpirun, one ctest per case
# of tests/checkpoint/resume_tests.py (its docstring says what each checks). Debian's
# /usr/bin/python3 is preferred: it has numpy and h5py; without h5py a case skips (77).
find_program(LORA_CHECKPOINT_PYTHON NAMES python3 PATHS /usr/bin NO_DEFAULT_PATH)
find_program(LORA_CHECKPOINT_PYTHON NAMES python3)
find_program(MPIRUN NAMES mpirun REQUIRED)

foreach(case same_layout same_layout_bf16 same_layout_nf4 llama cross_layout full_finetuning kill9 fallback refused every_minutes sigterm)
  add_test(NAME checkpoint.${case}
    COMMAND ${LORA_CHECKPOINT_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/checkpoint/resume_tests.py ${case}
      --bin $<TARGET_FILE:lora_dist> --work ${CMAKE_BINARY_DIR}/checkpoint_tests/${case}
      --data ${PROJECT_SOURCE_DIR}/data/demo_train.bin)
  # PROCESSORS 2: the kill and signal timings mean most when the ranks are not starved.
  set_tests_properties(checkpoint.${case} PROPERTIES LABELS "checkpoint;mpi" TIMEOUT 120 PROCESSORS 2
    SKIP_RETURN_CODE 77
    ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMP_NUM_THREADS=1;OMPI_MCA_rmaps_base_oversubscribe=1")
endforeach()
