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
# LoRA on an NF4 base against the same LoRA on the fp32 base (launch/nf4_quality.sh) in a short
# form: 6 steps per run on the 4-step base pretrain.base_short leaves; the table must parse and
# nf4's held-out loss stay within 2 % of fp32's. The README's figures come from the full run.
add_test(NAME nf4.quality_short
  COMMAND bash -c "bash '${PROJECT_SOURCE_DIR}/launch/nf4_quality.sh' 6 && /usr/bin/python3 '${CMAKE_CURRENT_LIST_DIR}/nf4/quality_report.py' \"$NF4_OUT\" --max-ratio 1.02")
set_tests_properties(nf4.quality_short PROPERTIES LABELS "nf4;hf" TIMEOUT 600 PROCESSORS 2
  FIXTURES_REQUIRED pretrained_base_short
  ENVIRONMENT "LORA_DIST=$<TARGET_FILE:lora_dist>;NF4_OUT=${CMAKE_BINARY_DIR}/nf4_quality;STUDY_BASE=${CMAKE_BINARY_DIR}/pretrain_base/hf;OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1")
