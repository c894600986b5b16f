# Script mode helper for tests that expect a command to fail cleanly:
#   cmake -DCMD=<exe>;<args...> -DEXPECT=<substring> [-DEXPECT2=...] [-DEXPECT3=...] [-DEXIT=<code>]
#         -P tests/expect_failure.cmake
# Passes only when the command exits with a code in 1..127 (not 0, not a crash or a
# signal; exactly EXIT when given) and its stdout+stderr contain every EXPECT* as a plain
# substring (no regex).
# tests/CMakeLists.txt includes every tests/*.cmake, so outside script mode this file
# does nothing.
if(NOT DEFINED CMAKE_SCRIPT_MODE_FILE)
  return()
endif()
if(NOT DEFINED CMD)
  message(FATAL_ERROR "expect_failure: pass -DCMD=<command;args...>")
endif()

execute_process(COMMAND ${CMD} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err
                TIMEOUT 120)
set(all "${out}${err}")
string(REPLACE ";" " " shown_cmd "${CMD}")

if(NOT rc MATCHES "^[0-9]+$")
  message(FATAL_ERROR "expect_failure: '${shown_cmd}' crashed or was killed (${rc})\n${all}")
elseif(rc EQUAL 0)
  message(FATAL_ERROR "expect_failure: '${shown_cmd}' succeeded but should have failed\n${all}")
elseif(rc GREATER_EQUAL 128)
  message(FATAL_ERROR "expect_failure: '${shown_cmd}' died from a signal (exit ${rc})\n${all}")
elseif(DEFINED EXIT AND NOT rc EQUAL EXIT)
  message(FATAL_ERROR "expect_failure: '${shown_cmd}' exited ${rc}, expected ${EXIT}\n${all}")
endif()

foreach(var EXPECT EXPECT2 EXPECT3)
  if(DEFINED ${var} AND NOT "${${var}}" STREQUAL "")
    string(FIND "${all}" "${${var}}" pos)
    if(pos EQUAL -1)
      message(FATAL_ERROR "expect_failure: output of '${shown_cmd}' (exit ${rc}) lacks "
                          "'${${var}}'\n--- output ---\n${all}")
    endif()
  endif()
endforeach()
message(STATUS "expect_failure: exit ${rc} with the expected message")
