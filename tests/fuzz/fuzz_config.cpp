// libFuzzer target: lora::load_run_config on arbitrary bytes as run.yaml
// (trainer/config/config_loader.h). ConfigError (or any std::exception) is a refusal; a crash,
// a stack overflow, an ASan/UBSan report, an out-of-memory or a timeout is a finding.
//
// The YAML goes to run.yaml in a private folder under /dev/shm that also holds two small
// valid token shards, train.bin and val.bin, so inputs that name them (as the seed corpus
// does) get past the file checks too: relative paths resolve against the YAML's folder.
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <exception>
#include <filesystem>
#include <vector>

#include "io/token_shard.h"
#include "trainer/config/config_loader.h"

namespace {

std::string g_dir;

void remove_dir() {
  std::error_code ec;
  std::filesystem::remove_all(g_dir, ec);
}

const std::string& yaml_path() {
  static std::string path;
  if (path.empty()) {
    char tmpl[] = "/dev/shm/fuzz_config.XXXXXX";
    if (!mkdtemp(tmpl)) std::abort();
    g_dir = tmpl;
    std::atexit(remove_dir);
    std::vector<uint32_t> tokens(64);
    for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = uint32_t(i * 7 % 64);
    lora::write_token_shard(g_dir + "/train.bin", tokens, 64, nullptr, 2);
    lora::write_token_shard(g_dir + "/val.bin", tokens, 64, nullptr, 4);
    path = g_dir + "/run.yaml";
  }
  return path;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& path = yaml_path();
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) std::abort();
  for (size_t done = 0; done < size;) {
    const ssize_t n = write(fd, data + done, size - done);
    if (n <= 0) std::abort();
    done += size_t(n);
  }
  close(fd);
  try {
    lora::RunConfig cfg = lora::load_run_config(path);
    (void)cfg;
  } catch (const std::exception&) {
  }
  return 0;
}
