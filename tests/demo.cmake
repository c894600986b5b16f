# The shipped demo, shortened: 4 ranks (tp 2 x dp 2) must lower the eval loss by a stated margin.
add_test(NAME demo_eval_loss_falls
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/demo/check_demo.py $<TARGET_FILE:lora_dist>
          ${CMAKE_CURRENT_SOURCE_DIR}/demo/demo_short.yaml ${CMAKE_CURRENT_BINARY_DIR}/demo_short)
set_tests_properties(demo_eval_loss_falls PROPERTIES TIMEOUT 600 LABELS demo)

# model.dtype bf16 vs fp32 on the same demo and seed: first-step loss within 1e-2, final eval within 1 %.
add_test(NAME demo_bf16_vs_fp32
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/demo/compare_dtypes.py $<TARGET_FILE:lora_dist>
          ${CMAKE_CURRENT_SOURCE_DIR}/demo/demo_short.yaml ${CMAKE_CURRENT_BINARY_DIR}/demo_dtypes)
set_tests_properties(demo_bf16_vs_fp32 PROPERTIES TIMEOUT 900 LABELS demo)

# Issue 27, point 2: the demo's accuracy report (generate --eval on the held-out split) against a
# Python recount of the same outputs, after a short run of launch/examples/demo_pretrained.yaml
# (LoRA on the shipped base, 4 ranks); one answer against a plain generate; bad --eval input.
add_test(NAME demo.eval_accuracy_recount
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/demo/check_eval_accuracy.py $<TARGET_FILE:lora_dist>
          ${PROJECT_SOURCE_DIR} ${CMAKE_CURRENT_BINARY_DIR}/demo_eval_accuracy)
set_tests_properties(demo.eval_accuracy_recount PROPERTIES TIMEOUT 900 LABELS "demo;generate;mpi" PROCESSORS 2)
