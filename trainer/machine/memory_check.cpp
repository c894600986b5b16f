#include "trainer/machine/memory_check.h"

#include <mpi.h>

#include <cstdlib>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>

#include "comm/collective_guard.h"
#include "model/memory_estimate.h"
#include "trainer/config/config_loader.h"

namespace lora {

namespace {

// "24G", "512M", "1073741824" -> bytes; 0 when it does not parse.
uint64_t parse_bytes(const std::string& s) {
  char* end = nullptr;
  const unsigned long long v = std::strtoull(s.c_str(), &end, 10);
  if (end == s.c_str()) return 0;
  const std::string suffix(end);
  if (suffix.empty() || suffix == "\n") return v;
  if (suffix == "K" || suffix == "k") return v << 10;
  if (suffix == "M" || suffix == "m") return v << 20;
  if (suffix == "G" || suffix == "g") return v << 30;
  return 0;
}

uint64_t meminfo_total() {
  std::ifstream in("/proc/meminfo");
  std::string key, unit;
  uint64_t kib = 0;
  while (in >> key >> kib >> unit)
    if (key == "MemTotal:") return kib * 1024;
  return 0;
}

uint64_t cgroup_limit() {
  for (const char* path : {"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}) {
    std::ifstream in(path);
    std::string v;
    if (in >> v && v != "max") {
      const uint64_t b = parse_bytes(v);
      if (b > 0) return b;
    }
  }
  return std::numeric_limits<uint64_t>::max();
}


}  // namespace

int ranks_on_this_node() {
  MPI_Comm node;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
  int n = 1;
  MPI_Comm_size(node, &n);
  MPI_Comm_free(&node);
  return n;
}

uint64_t node_memory_bytes() {
  if (const char* env = std::getenv("LORA_DIST_NODE_MEMORY")) {
    const uint64_t b = parse_bytes(env);
    if (b > 0) return b;
  }
  const uint64_t total = meminfo_total(), limit = cgroup_limit();
  return total == 0 ? limit : std::min(total, limit);
}

void check_fits_in_memory(const RunConfig& cfg, Communicator& comm) {
  const int ranks = ranks_on_this_node();
  agree_on_failure<ConfigError>(comm, Group::World, kExitConfig, "fit the run in its node's memory", [&] {
    const TrainConfig& t = cfg.train;
    const MemoryEstimate e = estimate_model_memory(cfg.model, cfg.lora, cfg.parallel.tp, t.micro_batch, t.seq_len,
                                                   t.recompute == "full");
    const uint64_t have = node_memory_bytes();
    const long double need = static_cast<long double>(e.total()) * ranks;
    if (need <= static_cast<long double>(have)) return;
    std::ostringstream msg;
    msg << cfg.source_path << ": model, train.micro_batch, train.seq_len, parallel.tp: this run needs at least "
        << format_bytes(e.total()) << " per rank (frozen weights " << format_bytes(e.frozen_weights)
        << ", LoRA state " << format_bytes(e.lora_state) << ", activations of micro_batch " << t.micro_batch
        << " x seq_len " << t.seq_len << " " << format_bytes(e.activations) << ", scratch " << format_bytes(e.scratch)
        << "), " << ranks << " rank(s) on this node need " << format_bytes(static_cast<uint64_t>(std::min<long double>(need, 1.8e19L)))
        << ", but the node has " << format_bytes(have)
        << ": lower train.micro_batch or train.seq_len, raise parallel.tp, or use more nodes";
    throw ConfigError(msg.str());
  });
}

}  // namespace lora
