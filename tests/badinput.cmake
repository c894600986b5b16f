# Bad-input suite (issue 8, point 2): tests/badinput/generate.py makes ~270 malformed inputs
# (YAML, token shards, HDF5 base files, checkpoints/adapters, command lines) from a fixed
# seed; tests/badinput/run_suite.py runs each against a LORA_SANITIZE=ON build with a
# 60 s timeout, and the heap-sensitive ones again against this Release build with
# MALLOC_PERTURB_. It fails on any crash, hang, sanitizer report, wrong exit status,
# message that does not name the file/key, or input accepted that must be refused.
#   ctest --test-dir build -L badinput --output-on-failure
# badinput.build_asan configures and builds the sanitizer binary in LORA_ASAN_BUILD_DIR
# (incremental after the first time), at -O1 -g1 to spend less of CI's 2 cores compiling
# (ASan's reports still name functions and lines). LORA_NATIVE=ON: trainer/machine/fma_peak.cpp does not yet
# compile without -march=native (AVX2/FMA intrinsics); the binary only runs here anyway. A unity
# build (8 sources a unit) because the headers (HDF5, yaml-cpp, CLI11, Eigen, nlohmann-json) are
# most of the compile: 7 min 30 s instead of 10 min 24 s alone on 2 cores (2026-12-02).
find_program(LORA_BADINPUT_PYTHON NAMES python3 PATHS /usr/bin NO_DEFAULT_PATH)
find_program(LORA_BADINPUT_PYTHON NAMES python3)
set(LORA_ASAN_BUILD_DIR ${PROJECT_SOURCE_DIR}/build-asan CACHE PATH "sanitizer build used by the badinput tests")
add_test(NAME badinput.build_asan
  COMMAND sh -c "\"$0\" -S \"$1\" -B \"$2\" -DCMAKE_BUILD_TYPE=None \"-DCMAKE_CXX_FLAGS=-O1 -g1\" -DLORA_SANITIZE=ON -DLORA_BUILD_TESTS=OFF -DLORA_WITH_CUDA=OFF -DLORA_NATIVE=ON -DCMAKE_UNITY_BUILD=ON -DCMAKE_UNITY_BUILD_BATCH_SIZE=8 && \"$0\" --build \"$2\" -j2 --target lora_dist"
          ${CMAKE_COMMAND} ${PROJECT_SOURCE_DIR} ${LORA_ASAN_BUILD_DIR})
set_tests_properties(badinput.build_asan PROPERTIES LABELS badinput TIMEOUT 2400 PROCESSORS 2
  FIXTURES_SETUP lora_asan_build)
add_test(NAME badinput.suite
  COMMAND ${LORA_BADINPUT_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/badinput/run_suite.py
          --bin ${LORA_ASAN_BUILD_DIR}/lora_dist --perturb-bin $<TARGET_FILE:lora_dist>
          --work ${CMAKE_BINARY_DIR}/badinput --jobs 2 --timeout 60)
set_tests_properties(badinput.suite PROPERTIES LABELS badinput TIMEOUT 1200 PROCESSORS 2
  FIXTURES_REQUIRED lora_asan_build)
