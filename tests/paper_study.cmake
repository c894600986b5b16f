# Issues 13 and 27: launch/paper_study.sh in its CI form (3 steps per run, 24 held-out records)
# on the shipped base, data/base/base.h5; its outputs must parse and add up
# (tests/study/check_paper_study.py): every run's exact match recounted from its answers, the
# trainable parameters from the model's shape, the tables of study.md. The figures themselves
# come from the full run (docs/analyze-and-paper-study.md, "The paper in small").
add_test(NAME paper_study.short
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/study/check_paper_study.py ${PROJECT_SOURCE_DIR}
          ${CMAKE_BINARY_DIR}/paper_study ${PROJECT_SOURCE_DIR}/data/base/base.h5 3)
set_tests_properties(paper_study.short PROPERTIES LABELS "study;analyze" TIMEOUT 1500 PROCESSORS 2
  ENVIRONMENT "LORA_DIST=$<TARGET_FILE:lora_dist>;OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1")
