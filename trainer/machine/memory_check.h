// Refusing, before anything big is allocated, a run that cannot fit in its node's memory:
// without it an oversized config ends in std::bad_alloc or the OOM killer minutes later,
// with no word on which key to change.
#pragma once
#include <cstdint>

#include "comm/communicator.h"
#include "trainer/config/run_config.h"

namespace lora {

// Physical memory this process may use: MemTotal, or the cgroup limit when lower.
// LORA_DIST_NODE_MEMORY (bytes, or with a K/M/G suffix) overrides it, for tests and for
// nodes whose memory the job may only partly use.
uint64_t node_memory_bytes();

// Ranks of the job on this node (MPI_COMM_TYPE_SHARED).
int ranks_on_this_node();

// Collective over the world: each rank compares model/memory_estimate.h's need of its rank,
// times the ranks on its node, with node_memory_bytes(); if any node is too small, every
// rank throws the same ConfigError (exit 2), naming the keys and the bytes.
void check_fits_in_memory(const RunConfig& cfg, Communicator& comm);

}  // namespace lora
