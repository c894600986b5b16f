# lora_dist against PyTorch (Debian's python3-torch): same weights, LoRA init and tokens
# give the same loss, LoRA gradients and AdamW updates.
add_executable(reference_driver ${CMAKE_CURRENT_SOURCE_DIR}/torch/reference_driver.cpp)
target_link_libraries(reference_driver PRIVATE lora_core)
add_test(NAME torch_reference
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/torch/torch_reference.py
          --driver $<TARGET_FILE:reference_driver> --workdir ${CMAKE_CURRENT_BINARY_DIR}/torch_reference)
set_tests_properties(torch_reference PROPERTIES TIMEOUT 300 LABELS torch ENVIRONMENT "OMP_NUM_THREADS=2")

# Full fine-tuning (lora.enabled: false): every base tensor's gradient and AdamW update.
add_test(NAME torch_reference_full
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/torch/torch_reference.py --full
          --driver $<TARGET_FILE:reference_driver> --workdir ${CMAKE_CURRENT_BINARY_DIR}/torch_reference_full)
set_tests_properties(torch_reference_full PROPERTIES TIMEOUT 300 LABELS torch ENVIRONMENT "OMP_NUM_THREADS=2")
