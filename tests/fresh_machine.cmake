# A fresh machine has what the build and the tests use: every Debian package they use (files
# CMake found, libraries the programs load, the Python modules the scripts import under
# /usr/bin/python3, the programs they run) comes in through launch/install_deps.sh or the base system.
add_test(NAME fresh_machine.packages
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/fresh_machine/check_packages.py ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR})
set_tests_properties(fresh_machine.packages PROPERTIES LABELS fresh_machine TIMEOUT 120)
