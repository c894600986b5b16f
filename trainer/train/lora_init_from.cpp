#include "trainer/train/lora_init_from.h"

#include <vector>

#include "io/peft_adapter.h"
#include "model/tensor_shards.h"

namespace lora {

void load_lora_init_from(const RunConfig& cfg, const LoraLayout& local, int tp_rank, float* params) {
  const LoraLayout full = lora_layout(cfg.model, cfg.lora, 1);
  std::vector<float> all;
  read_peft_adapter(cfg.lora.init_from, cfg.lora, cfg.model, full, all);
  for (const TensorSpec& s : local.tensors)
    slice_of_full_tensor(s, all.data() + full.at(s.name).offset, tp_rank, params + s.offset);
}

}  // namespace lora
