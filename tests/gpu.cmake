# lora_dist itself on the CUDA backend against the CPU backend (tests/gpu/cuda_runs.sh):
# losses, tp 2 on one GPU, checkpoints across backends, NCCL bytes and watchdog with 2+ GPUs.
# Skipped (exit 77) with the reason where no GPU can be used.
add_test(NAME gpu.cuda_runs
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/gpu/cuda_runs.sh $<TARGET_FILE:lora_dist>
          ${CMAKE_CURRENT_BINARY_DIR}/cuda_runs_work ${PROJECT_SOURCE_DIR})
set_tests_properties(gpu.cuda_runs PROPERTIES LABELS cuda SKIP_RETURN_CODE 77 TIMEOUT 900)
