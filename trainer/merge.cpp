#include "trainer/merge.h"

#include <mpi.h>

#include "comm/mpi_communicator.h"
#include "io/base_weights.h"
#include "io/checkpoint.h"
#include "io/hf_base_weights.h"
#include "model/gpt.h"

namespace lora {

void merge_adapter_into_base(const RunConfig& cfg, const std::string& adapter, const std::string& out) {
  MpiCommunicator self(MPI_COMM_SELF, 1, 1);  // the whole, unsharded model
  // Merged in fp32 whatever model.dtype trained with: W0 + s B A rounded to bf16 would lose
  // most of the update (|s B A| is often below bf16's resolution of |W0|), and the file
  // format stores float32. A bf16 run then loads and rounds the merged file once.
  ModelConfig mc = cfg.model;
  mc.dtype = "fp32";
  GptModel<float> model(mc, cfg.lora, self, 1, 1);
  // The adapter is checked against the base of this config (shape, fingerprint), its own
  // LoRA settings and every tensor's shape before anything is merged.
  read_adapter(adapter, cfg, base_fingerprint(cfg.model), model.lora_layout(), 0, model.lora_params().data());
  if (cfg.model.init == "file")
    read_base_weights(cfg.model.weights_file, model.base_layout(), 0, model.base().data());
  else if (cfg.model.init == "hf")
    read_hf_base_weights(cfg.model.path, model.base_layout(), 0, model.base().data());
  else
    model.init_base_from_seed(cfg.model.init_seed);
  model.merge_lora(true);
  write_base_weights(out, model.base_layout(), model.base().data());
}

}  // namespace lora
