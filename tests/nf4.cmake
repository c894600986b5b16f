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
