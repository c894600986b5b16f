# The shipped demo, shortened: 4 ranks (tp 2 x dp 2) must lower the eval loss by a stated margin.
add_test(NAME demo_eval_loss_falls
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/demo/check_demo.py $<TARGET_FILE:lora_dist>
          ${CMAKE_CURRENT_SOURCE_DIR}/demo/demo_short.yaml ${CMAKE_CURRENT_BINARY_DIR}/demo_short)
set_tests_properties(demo_eval_loss_falls PROPERTIES TIMEOUT 600 LABELS demo)
