# HF GPT-2 safetensors base weights (model.init: hf): folders written by tests/hf/gpt2_folder.py
# (F32/F16/BF16, one file or sharded) are loaded at tp 1, 2 and 4 over mpirun and give the
# logits of the PyTorch GPT-2 written in that file; each rank reads only its shard's bytes.
add_executable(hf_logits_driver ${CMAKE_CURRENT_SOURCE_DIR}/hf/hf_logits_driver.cpp)
target_link_libraries(hf_logits_driver PRIVATE lora_core)
add_test(NAME hf.gpt2_logits
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/hf/gpt2_logits_test.py
          --driver $<TARGET_FILE:hf_logits_driver> --work ${CMAKE_BINARY_DIR}/hf_gpt2_logits)
set_tests_properties(hf.gpt2_logits PROPERTIES LABELS "hf;torch;mpi" TIMEOUT 600 PROCESSORS 2
  ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMP_NUM_THREADS=1;OMPI_MCA_rmaps_base_oversubscribe=1")
