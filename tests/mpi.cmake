# Tests over real MPI ranks (mpirun --oversubscribe: 8 ranks share the 2 cores).
find_program(MPIRUN NAMES mpirun REQUIRED)
set(LORA_MPIRUN ${MPIRUN} --oversubscribe --allow-run-as-root)
set(LORA_MPI_ENV "OMP_NUM_THREADS=1;OMPI_MCA_rmaps_base_oversubscribe=1")

add_executable(layout_invariance ${CMAKE_CURRENT_SOURCE_DIR}/mpi/layout_invariance.cpp)
target_link_libraries(layout_invariance PRIVATE lora_core)
add_test(NAME mpi_layout_invariance
  COMMAND ${LORA_MPIRUN} -np 8 $<TARGET_FILE:layout_invariance> ${CMAKE_CURRENT_BINARY_DIR}/layout_invariance_work)
set_tests_properties(mpi_layout_invariance PROPERTIES TIMEOUT 300 LABELS mpi ENVIRONMENT "${LORA_MPI_ENV}")
# The same with model.dtype bf16 (tolerances in layout_invariance.cpp).
add_test(NAME mpi_layout_invariance_bf16
  COMMAND ${LORA_MPIRUN} -np 8 $<TARGET_FILE:layout_invariance> ${CMAKE_CURRENT_BINARY_DIR}/layout_invariance_bf16_work bf16)
set_tests_properties(mpi_layout_invariance_bf16 PROPERTIES TIMEOUT 300 LABELS mpi ENVIRONMENT "${LORA_MPI_ENV}")
# Full fine-tuning (lora.enabled: false): every base tensor's gradients and weights.
add_test(NAME mpi_layout_invariance_full
  COMMAND ${LORA_MPIRUN} -np 8 $<TARGET_FILE:layout_invariance> ${CMAKE_CURRENT_BINARY_DIR}/layout_invariance_full_work full)
set_tests_properties(mpi_layout_invariance_full PROPERTIES TIMEOUT 300 LABELS mpi ENVIRONMENT "${LORA_MPI_ENV}")
# The Llama block (grouped-query attention, RoPE, SwiGLU, untied head): the same checks.
add_test(NAME mpi_layout_invariance_llama
  COMMAND ${LORA_MPIRUN} -np 8 $<TARGET_FILE:layout_invariance> ${CMAKE_CURRENT_BINARY_DIR}/layout_invariance_llama_work llama)
set_tests_properties(mpi_layout_invariance_llama PROPERTIES TIMEOUT 300 LABELS "mpi;llama" ENVIRONMENT "${LORA_MPI_ENV}")
# The Llama block in model.dtype nf4 (d 256): NF4 shards quantized per rank, fp32 tolerances.
add_test(NAME mpi_layout_invariance_nf4
  COMMAND ${LORA_MPIRUN} -np 8 $<TARGET_FILE:layout_invariance> ${CMAKE_CURRENT_BINARY_DIR}/layout_invariance_nf4_work nf4)
set_tests_properties(mpi_layout_invariance_nf4 PROPERTIES TIMEOUT 300 LABELS "mpi;nf4" ENVIRONMENT "${LORA_MPI_ENV}")
# for_each_full_block, which checkpoints and model.h5 are written from: every shard kind at
# tp 1, 2, 4 and block limits from one element up.
add_executable(gather_blocks ${CMAKE_CURRENT_SOURCE_DIR}/mpi/gather_blocks.cpp)
target_link_libraries(gather_blocks PRIVATE lora_core)
add_test(NAME mpi_gather_blocks COMMAND ${LORA_MPIRUN} -np 4 $<TARGET_FILE:gather_blocks>)
set_tests_properties(mpi_gather_blocks PROPERTIES TIMEOUT 120 LABELS mpi ENVIRONMENT "${LORA_MPI_ENV}")
# The trainer's device path (upload, download, host-staged collectives) with the CPU's ops in
# memory of their own, against the plain CPU backend, bit for bit: issue 14 without a GPU.
add_executable(device_path ${CMAKE_CURRENT_SOURCE_DIR}/mpi/device_path.cpp)
target_link_libraries(device_path PRIVATE lora_core)
add_test(NAME mpi_device_path COMMAND ${LORA_MPIRUN} -np 4 $<TARGET_FILE:device_path> ${CMAKE_CURRENT_BINARY_DIR}/device_path_work)
set_tests_properties(mpi_device_path PROPERTIES TIMEOUT 300 LABELS mpi ENVIRONMENT "${LORA_MPI_ENV}")
