# NF4 with double quantization (issue 24, the format alone: model/nf4): tests/nf4/nf4_reference.py
# is a numpy implementation of bitsandbytes' published algorithm, and nf4_reference_test.py
# compares the driver's codes, absmax, nested codes, nested scales, offset and dequantized
# values with it bit for bit, on random and adversarial arrays.
add_executable(nf4_driver ${CMAKE_CURRENT_LIST_DIR}/nf4/nf4_driver.cpp)
target_link_libraries(nf4_driver PRIVATE lora_core)
add_test(NAME nf4.bitsandbytes_reference
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/nf4/nf4_reference_test.py
          --driver $<TARGET_FILE:nf4_driver> --work ${CMAKE_BINARY_DIR}/nf4_reference)
set_tests_properties(nf4.bitsandbytes_reference PROPERTIES LABELS "nf4" TIMEOUT 120)
# Hugging Face folders quantized by bitsandbytes (GPT-2 and Llama, written by the numpy
# reference under bitsandbytes' names): loaded as they are, equal to quantizing at load, equal
# to PyTorch on the dequantized weights; damaged ones refused (exit 3).
add_test(NAME nf4.bnb_folders
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/nf4/bnb_folder_test.py
          --driver $<TARGET_FILE:hf_logits_driver> --bin $<TARGET_FILE:lora_dist>
          --data ${PROJECT_SOURCE_DIR}/data/demo_train.bin --work ${CMAKE_BINARY_DIR}/nf4_bnb_folders)
set_tests_properties(nf4.bnb_folders PROPERTIES LABELS "nf4;hf" TIMEOUT 300
  ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMP_NUM_THREADS=1")
