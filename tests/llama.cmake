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

# The README's Llama walk-through (launch/llama_walkthrough.sh) end to end: a random Llama 3
# shaped folder with Llama 3's real tokenizer (npm), prepare of chat conversations with its chat
# template, training at tp 2 x dp 2, export --peft and --merged, generate with the adapter and
# the merged folder; then tests/llama/check_walkthrough.py checks the merged folder against
# PEFT's semantics (W + s B A under PEFT's key names) and the adapter config's keys, and
# `lora_dist analyze` gives the same figures for the adapter.h5 and its PEFT export.
add_test(NAME llama.walkthrough
  COMMAND bash -c "bash '${PROJECT_SOURCE_DIR}/launch/llama_walkthrough.sh' && /usr/bin/python3 '${CMAKE_CURRENT_LIST_DIR}/llama/check_walkthrough.py' \"$LLAMA_WALK_OUT\" \"$LORA_DIST\"")
set_tests_properties(llama.walkthrough PROPERTIES LABELS "llama;generate;hf;mpi;peft;demo" TIMEOUT 600 PROCESSORS 2
  ENVIRONMENT "LORA_DIST=$<TARGET_FILE:lora_dist>;LLAMA_WALK_OUT=${CMAKE_BINARY_DIR}/llama_walkthrough;NPM_FIXTURES=${CMAKE_BINARY_DIR}/npm_tokenizers;OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1")
