# Coverage-guided fuzzing (issue 8, point 3): libFuzzer targets for the token-shard reader
# and the config loader (tests/fuzz/), built by their own small clang project so the main
# build never needs clang. Label "fuzz":  ctest --test-dir build -L fuzz --output-on-failure
# Without clang-14 / libclang-rt-14-dev these FAIL, saying to run launch/install_deps.sh.
# Each target runs LORA_FUZZ_SECONDS (default 60) from the seed corpus plus what earlier
# runs found (build/fuzz/corpus); a crash, sanitizer report, 10 s input or 2 GiB RSS fails.
set(LORA_FUZZ_SECONDS 60 CACHE STRING "seconds each libFuzzer target runs under ctest")
set(LORA_FUZZ_DIR ${CMAKE_BINARY_DIR}/fuzz)
add_test(NAME fuzz.build COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/fuzz/run_fuzzer.sh build ${LORA_FUZZ_DIR})
set_tests_properties(fuzz.build PROPERTIES LABELS "fuzz;badinput" TIMEOUT 600 FIXTURES_SETUP lora_fuzzers
  PROCESSORS 2)
foreach(target token_shard config)
  add_test(NAME fuzz.${target}
    COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/fuzz/run_fuzzer.sh run ${LORA_FUZZ_DIR} ${target} ${LORA_FUZZ_SECONDS})
  math(EXPR fuzz_timeout "${LORA_FUZZ_SECONDS} + 120")
  set_tests_properties(fuzz.${target} PROPERTIES LABELS "fuzz;badinput" TIMEOUT ${fuzz_timeout}
    FIXTURES_REQUIRED lora_fuzzers)
endforeach()
