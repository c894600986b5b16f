// Scratch paths for unit tests. ctest runs every TEST as its own process, two at once (-j2),
// and other checkouts' test runs may share /tmp: a fixed name under testing::TempDir() lets
// one test delete another's files mid-run. The pid makes each process's names its own.
#pragma once
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

namespace lora::test {

inline std::filesystem::path unique_temp_path(const std::string& name) {
  return std::filesystem::path(testing::TempDir()) / ("lora_" + std::to_string(getpid()) + "_" + name);
}

}  // namespace lora::test
