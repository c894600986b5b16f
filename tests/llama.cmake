# The Llama family (issue 23): tests/llama/llama_reference_test.py writes random Llama and
# Qwen2 folders (GQA, head_dim != d/n_head, biases, llama3 RoPE scaling, tied and untied) and
# a PEFT adapter on every target, and compares lora_dist's logits, loss and LoRA gradients at
# tp 1, 2 and 4 with a PyTorch forward written from Hugging Face's formulas.
add_executable(llama_reference_driver ${CMAKE_CURRENT_SOURCE_DIR}/llama/llama_reference_driver.cpp)
target_link_libraries(llama_reference_driver PRIVATE lora_core)
add_test(NAME llama.torch_reference
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/llama/llama_reference_test.py
          --driver $<TARGET_FILE:llama_reference_driver> --work ${CMAKE_BINARY_DIR}/llama_reference)
set_tests_properties(llama.torch_reference PROPERTIES LABELS "llama;torch;mpi;hf" TIMEOUT 600 PROCESSORS 2
  ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMP_NUM_THREADS=1;OMPI_MCA_rmaps_base_oversubscribe=1")
