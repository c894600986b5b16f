// The token shard the MPI tests train on: 3000 Philox tokens below `vocab`, every `skip`-th
// target left out of the loss, written by world rank 0 into `dir` (created); every rank
// returns its path once the file exists.
#pragma once
#include <mpi.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "io/token_shard.h"
#include "model/rng.h"

namespace lora::test {

inline std::string write_test_shard(const std::string& dir, const std::string& name, uint64_t seed, int vocab,
                                    int skip) {
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  const std::string path = dir + "/" + name;
  if (rank == 0) {
    std::filesystem::create_directories(dir);
    std::vector<uint32_t> tokens(3000);
    std::vector<uint8_t> mask(3000);
    for (size_t i = 0; i < tokens.size(); ++i)
      tokens[i] = philox(seed, seed + 1, i, 0, 0)[0] % vocab, mask[i] = i % skip != 0;
    write_token_shard(path, tokens, vocab, &mask, 2);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  return path;
}

}  // namespace lora::test
