// Runs the first optimizer steps of a run.yaml on one rank and dumps what the PyTorch
// reference (torch_reference.py) recomputes: the initial trainable tensors (the LoRA factors,
// or with lora.enabled: false every base tensor), and per step the global batch, loss, lr,
// gradient norm, the (clipped) gradients and the updated parameters.
//   reference_driver run.yaml out_dir
#include <mpi.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "comm/mpi_communicator.h"
#include "io/base_weights.h"
#include "io/batch_sampler.h"
#include "trainer/config/config_loader.h"
#include "trainer/train/trainer.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s run.yaml out_dir\n", argv[0]);
    return 2;
  }
  MPI_Init(&argc, &argv);
  int rc = 0;
  try {
    const lora::RunConfig cfg = lora::load_run_config(argv[1]);
    const std::string out = argv[2];
    lora::MpiCommunicator comm(MPI_COMM_WORLD, 1, 1);
    lora::Trainer trainer(cfg, comm);
    auto& model = trainer.model();
    lora::write_base_weights(out + "/init.h5", model.trainable_layout(), model.trainable_params().data());

    // The batch of step s is samples [s*batch, (s+1)*batch) of a shuffling sampler keyed by train.seed.
    const lora::TokenShard shard = lora::read_token_shard(cfg.data.train);
    const lora::BatchSampler sampler(shard, cfg.train.seq_len, cfg.train.seed, true);
    const size_t n = static_cast<size_t>(cfg.train.batch_size) * cfg.train.seq_len;
    nlohmann::json steps = nlohmann::json::array();
    for (int s = 0; s < cfg.train.steps; ++s) {
      std::vector<int32_t> inputs(n), targets(n);
      std::vector<float> mask(n);
      sampler.fill(static_cast<uint64_t>(s) * cfg.train.batch_size, cfg.train.batch_size, inputs.data(),
                   targets.data(), mask.data());
      const lora::StepStats st = trainer.train_step();
      const std::string tag = out + "/step" + std::to_string(s);
      lora::write_base_weights(tag + "_grads.h5", model.trainable_layout(), model.trainable_grads().data());
      lora::write_base_weights(tag + "_params.h5", model.trainable_layout(), model.trainable_params().data());
      steps.push_back({{"loss", st.loss}, {"lr", st.lr}, {"grad_norm", st.grad_norm}, {"inputs", inputs},
                       {"targets", targets}, {"mask", mask}});
    }
    std::ofstream(out + "/steps.json") << steps.dump();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "reference_driver: %s\n", e.what());
    rc = 1;
  }
  MPI_Finalize();
  return rc;
}
