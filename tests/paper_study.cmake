# Issue 13, point 4: launch/paper_study.sh in its CI form (3 steps per run, 2 prompts) on the
# 4-step base pretrain.base_short leaves in the build folder; its outputs must parse and hold
# together (tests/study/check_paper_study.py). The figures themselves come from the full run
# (README, "The paper in small").
add_test(NAME paper_study.short
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/study/check_paper_study.py ${PROJECT_SOURCE_DIR}
          ${CMAKE_BINARY_DIR}/paper_study ${CMAKE_BINARY_DIR}/pretrain_base/hf 3)
set_tests_properties(paper_study.short PROPERTIES LABELS "study;hf;analyze" TIMEOUT 1500 PROCESSORS 2
  FIXTURES_REQUIRED pretrained_base_short
  ENVIRONMENT "LORA_DIST=$<TARGET_FILE:lora_dist>;OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1")
