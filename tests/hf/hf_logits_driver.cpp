// Loads an HF GPT-2 folder (the run.yaml's model.init: hf) on every rank of an mpirun job
// with tp = the job's size, and writes what tests/hf/gpt2_logits_test.py compares with its
// PyTorch GPT-2: the full logits of the token sequences in tokens.json, assembled from the
// ranks' vocabulary slices, and each rank's read figures (io/hf_base_weights.h).
//   mpirun -np TP hf_logits_driver run.yaml tokens.json out_dir
// tokens.json: [[t, ...], ...] (equal lengths) or [] for the read figures alone.
#include <mpi.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "comm/mpi_communicator.h"
#include "io/hf_base_weights.h"
#include "model/gpt.h"
#include "tests/hf/full_logits.h"
#include "trainer/config/config_loader.h"

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s run.yaml tokens.json out_dir\n", argv[0]);
    return 2;
  }
  MPI_Init(&argc, &argv);
  int rank = 0, tp = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &tp);
  try {
    const lora::RunConfig cfg = lora::load_run_config(argv[1]);
    const std::string out = argv[3];
    const nlohmann::json seqs = nlohmann::json::parse(std::ifstream(argv[2]));
    const int B = static_cast<int>(seqs.size()), T = B ? static_cast<int>(seqs[0].size()) : 1;
    lora::MpiCommunicator comm(MPI_COMM_WORLD, tp, 1);
    lora::GptModel<float> model(cfg.model, cfg.lora, comm, std::max(B, 1), T);
    const lora::HfReadStats st =
        lora::read_hf_base_weights(cfg.model.path, model.base_layout(), rank, model.base().data(),
                                   model.base_bf16().data(), cfg.model.arch, &model.nf4_staging());
    model.finish_nf4();  // model.dtype nf4: the TP group double-quantizes what was staged
    model.init_lora(cfg.train.seed);  // B = 0: the adapters add nothing

    // Every rank's figures, in rank order.
    const unsigned long long mine[3] = {st.bytes_read, st.pages_touched, st.file_bytes};
    std::vector<unsigned long long> all(3 * tp);
    MPI_Gather(mine, 3, MPI_UNSIGNED_LONG_LONG, all.data(), 3, MPI_UNSIGNED_LONG_LONG, 0, MPI_COMM_WORLD);
    if (rank == 0) {
      nlohmann::json ranks = nlohmann::json::array();
      for (int r = 0; r < tp; ++r)
        ranks.push_back({{"bytes_read", all[3 * r]}, {"pages_touched", all[3 * r + 1]}, {"file_bytes", all[3 * r + 2]}});
      std::ofstream(out + "/read.json") << nlohmann::json{{"tp", tp}, {"dtypes", st.dtypes}, {"ranks", ranks}}.dump();
    }
    if (B > 0) {
      std::vector<int32_t> inputs;
      for (const auto& s : seqs)
        for (const auto& t : s) inputs.push_back(t.get<int32_t>());
      std::vector<int32_t> targets(inputs.size(), 0);
      std::vector<float> mask(inputs.size(), 1.0f);
      std::vector<float> local;
      model.logits(lora::MicroBatch{inputs.data(), targets.data(), mask.data(), B, T}, local);
      const std::vector<float> full = lora::test::gather_full_logits(local, B * T, model.dims().vocab_local,
                                                                     cfg.model.vocab_size);
      if (rank == 0)
        std::ofstream(out + "/logits.f32", std::ios::binary)
            .write(reinterpret_cast<const char*>(full.data()), static_cast<std::streamsize>(full.size() * 4));
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "hf_logits_driver: rank %d: %s\n", rank, e.what());
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);  // the other ranks may be waiting in a gather
  }
  MPI_Finalize();
  return 0;
}
