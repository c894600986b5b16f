// Runs a Llama-family model of lora_dist on every rank of an mpirun job (tp = the job's size)
// and writes what tests/llama/llama_reference_test.py compares with its own PyTorch forward:
//   mpirun -np TP llama_reference_driver run.yaml tokens.json out_dir
// run.yaml: model.init hf (a Llama folder), lora.init_from (a PEFT adapter with non-zero A
// and B), the targets. tokens.json: [[t, ...], ...], B sequences of T + 1 tokens: inputs are
// the first T, targets the last T, every target scored. Writes, from rank 0:
//   logits.f32        the full logits [B*T x V], assembled from the ranks' vocabulary slices
//   loss.json         {"loss": mean cross-entropy}
//   grads/            the loss's gradients with respect to every LoRA factor, whole (summed
//                     over the ranks' slices), as a PEFT adapter (io/peft_adapter.h's names)
#include <mpi.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "comm/mpi_communicator.h"
#include "io/peft_adapter.h"
#include "model/gpt.h"
#include "tests/hf/full_logits.h"
#include "trainer/config/config_loader.h"
#include "trainer/train/load_base.h"
#include "trainer/train/lora_init_from.h"

namespace {

// The whole tensor of every LoRA factor: each rank puts its slice at its global place, a
// replicated factor only from TP rank 0, and a sum over the ranks assembles it.
std::vector<float> whole_lora(const lora::LoraLayout& local, const lora::LoraLayout& full, const std::vector<float>& mine,
                              int tp_rank) {
  std::vector<float> out(full.total, 0.0f), sum(full.total, 0.0f);
  for (const lora::TensorSpec& s : local.tensors) {
    if (s.shard == lora::Shard::Replicated && tp_rank != 0) continue;
    float* dst = out.data() + full.at(s.name).offset;
    for (int lr = 0; lr < s.local_rows; ++lr)
      for (int lc = 0; lc < s.local_cols; ++lc) {
        const int r = s.global_row(lr, tp_rank), c = s.global_col(lc, tp_rank);
        if (r < s.rows) dst[size_t(r) * s.cols + c] = mine[s.offset + size_t(lr) * s.local_cols + lc];
      }
  }
  MPI_Allreduce(out.data(), sum.data(), static_cast<int>(out.size()), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
  return sum;
}

}  // namespace

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
    const int B = static_cast<int>(seqs.size()), T = static_cast<int>(seqs[0].size()) - 1;
    std::vector<int32_t> inputs, targets;
    for (const auto& s : seqs)
      for (int t = 0; t < T; ++t) {
        inputs.push_back(s[t].get<int32_t>());
        targets.push_back(s[t + 1].get<int32_t>());
      }
    const std::vector<float> mask(inputs.size(), 1.0f);
    const lora::MicroBatch mb{inputs.data(), targets.data(), mask.data(), B, T};

    lora::MpiCommunicator comm(MPI_COMM_WORLD, tp, 1);
    lora::GptModel<float> model(cfg.model, cfg.lora, comm, B, T);
    lora::load_frozen_base(cfg, model, comm, /*log=*/nullptr);
    lora::load_lora_init_from(cfg, model.lora_layout(), rank, model.lora_params().data());

    std::vector<float> local;
    model.logits(mb, local);
    model.zero_grads();
    const double my_loss = model.step(mb, double(B) * T, lora::DropoutContext{}, /*grad=*/true);
    double loss = 0;
    MPI_Allreduce(&my_loss, &loss, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    loss /= tp;  // every TP rank returns the whole loss (the vocabulary-parallel CE reduces it)
    // The replicated factors' gradients are summed over the TP ranks (trainer/train/grad_sync.h).
    std::vector<float>& g = model.lora_grads();
    const size_t rep = model.lora_layout().replicated_size;
    MPI_Allreduce(MPI_IN_PLACE, g.data(), static_cast<int>(rep), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    const lora::LoraLayout full = lora::lora_layout(cfg.model, cfg.lora, 1);
    const std::vector<float> grads = whole_lora(model.lora_layout(), full, g, rank);

    const std::vector<float> logits = lora::test::gather_full_logits(local, B * T, model.dims().vocab_local,
                                                                     cfg.model.vocab_size);
    if (rank == 0) {
      std::ofstream(out + "/logits.f32", std::ios::binary)
          .write(reinterpret_cast<const char*>(logits.data()), static_cast<std::streamsize>(logits.size() * 4));
      std::ofstream(out + "/loss.json") << nlohmann::json{{"loss", loss}}.dump();
      lora::write_peft_adapter(out + "/grads", cfg.lora, cfg.model, full, grads, "");
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "llama_reference_driver: rank %d: %s\n", rank, e.what());
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);  // the other ranks may be waiting in a collective
  }
  MPI_Finalize();
  return 0;
}
