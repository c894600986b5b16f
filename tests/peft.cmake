# `lora_dist export --peft` (issue 12, point 4): tests/peft/peft_export_test.py trains a random
# HF GPT-2 folder a few steps for three target sets (q,v; all with rslora; k,fc2), exports
# the adapter, reads it back through io/peft_adapter.h (peft_roundtrip_driver: bit-identical
# to adapter.h5), applies the files with PEFT's documented semantics (Conv1D, fan_in_fan_out,
# rank/alpha per module from rank_pattern/alpha_pattern) and compares with `lora_dist merge`
# (rel. < 1e-5); missing/damaged adapters, unwritable or non-empty folders and an adapter
# that does not fit the targets are refused.
add_executable(peft_roundtrip_driver ${CMAKE_CURRENT_SOURCE_DIR}/peft/peft_roundtrip_driver.cpp)
target_link_libraries(peft_roundtrip_driver PRIVATE lora_core)
add_test(NAME peft.export
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/peft/peft_export_test.py
          --bin $<TARGET_FILE:lora_dist> --driver $<TARGET_FILE:peft_roundtrip_driver>
          --work ${CMAKE_BINARY_DIR}/peft_export --data ${PROJECT_SOURCE_DIR}/data/demo_train.bin)
set_tests_properties(peft.export PROPERTIES LABELS "peft;hf;torch" TIMEOUT 300
  ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMP_NUM_THREADS=1")

# `lora_dist export --merged DIR` (issue 12, point 5): tests/peft/merged_export_test.py trains an
# F32 HF folder (every target), a BF16 one with the `transformer.` prefix (q,v), an F16 one
# (k,fc2) and a seeded base (o,fc1), exports each merged: exactly GPT2LMHeadModel's tensor names in the base's dtype
# and config.json's GPT-2 keys; the Conv1D weights equal W0 + (s B A).T from adapter.h5 (F32
# rel. < 1e-6; BF16/F16 the float32 sum rounded once); loaded back with model.init: hf the folder
# gives the first step the loss of the adapter model (rel. < 1e-5 in F32); a non-empty folder,
# a missing adapter and neither --peft nor --merged are refused.
add_test(NAME peft.export_merged
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/peft/merged_export_test.py
          --bin $<TARGET_FILE:lora_dist> --work ${CMAKE_BINARY_DIR}/merged_export
          --data ${PROJECT_SOURCE_DIR}/data/demo_train.bin)
set_tests_properties(peft.export_merged PROPERTIES LABELS "peft;hf;torch" TIMEOUT 300
  ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMP_NUM_THREADS=1")
