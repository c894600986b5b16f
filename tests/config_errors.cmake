# The real binary on every tests/configs/bad_*.yaml: `lora_dist --yaml <file>` must exit
# non-zero without crashing and print "lora_dist: config error: ", the file's
# `# expect: <substring>` (first header line) and "<file name>:<line>:" where
# `# line: N` is the second header line. One ctest per file, label "config".
file(GLOB LORA_BAD_CONFIGS CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/configs/bad_*.yaml)
foreach(cfg IN LISTS LORA_BAD_CONFIGS)
  get_filename_component(stem ${cfg} NAME_WE)
  get_filename_component(fname ${cfg} NAME)
  # One match per read, so a message with '[' or ';' never goes through list splitting.
  file(STRINGS ${cfg} expect_line LIMIT_COUNT 1 REGEX "^# expect: ")
  file(STRINGS ${cfg} line_line LIMIT_COUNT 1 REGEX "^# line: [0-9]+")
  string(REGEX REPLACE "^# expect: " "" expect "${expect_line}")
  string(REGEX REPLACE "^# line: ([0-9]+).*$" "\\1" line "${line_line}")
  if(expect STREQUAL "" OR line STREQUAL "")
    message(FATAL_ERROR "${cfg}: needs '# expect: <substring>' and '# line: N' header lines")
  endif()
  add_test(NAME config_error.${stem}
    COMMAND ${CMAKE_COMMAND}
      "-DCMD=$<TARGET_FILE:lora_dist>$<SEMICOLON>--yaml$<SEMICOLON>${cfg}"
      "-DEXPECT=lora_dist: config error: "
      "-DEXPECT2=${expect}"
      "-DEXPECT3=${fname}:${line}:"
      -P ${CMAKE_CURRENT_LIST_DIR}/expect_failure.cmake)
  set_tests_properties(config_error.${stem} PROPERTIES LABELS config TIMEOUT 150)
endforeach()
