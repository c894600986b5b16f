// `lora_dist merge`: base + adapter, folded into one set of weights, gives the same logits
// as the base with its LoRA branches; a mismatched adapter is refused.
#include <gtest/gtest.h>

#include <filesystem>

#include "comm/mpi_communicator.h"
#include "io/base_weights.h"
#include "io/checkpoint.h"
#include "model/gpt.h"
#include "model/rng.h"
#include "tests/model_shape.h"
#include "trainer/adamw.h"
#include "trainer/merge.h"

namespace lora {
namespace {

namespace fs = std::filesystem;

RunConfig config(const fs::path& dir) {
  RunConfig c;
  c.model = test::model_shape(2, 2, 16, 32, 8);
  c.model.init_std = 0.2f;
  c.lora.r = 4;
  c.lora.alpha = 8;
  for (bool& t : c.lora.targets) t = true;
  c.output.dir = dir.string();
  return c;
}

TEST(Merge, MergedWeightsGiveTheAdaptedLogits) {
  const fs::path dir = fs::path(testing::TempDir()) / "merge_test";
  fs::create_directories(dir);
  RunConfig cfg = config(dir);
  MpiCommunicator comm(MPI_COMM_SELF, 1, 1);
  GptModel<float> adapted(cfg.model, cfg.lora, comm, 1, 8);
  adapted.init_base_from_seed(cfg.model.init_seed);
  auto& p = adapted.lora_params();
  for (size_t i = 0; i < p.size(); ++i) p[i] = static_cast<float>(uniform_element(3, RngPurpose::LoraInit, 9, i, 0.3));
  AdamW unused(p.size());
  const std::string adapter = (dir / "adapter.h5").string(), merged = (dir / "merged.h5").string();
  save_adapter(comm, cfg, base_fingerprint(cfg.model),
               LoraSlices{adapted.lora_layout(), 0, p.data(), unused.m.data(), unused.v.data()}, adapter);

  merge_adapter_into_base(cfg, adapter, merged);

  RunConfig merged_cfg = cfg;
  merged_cfg.model.init = "file";
  merged_cfg.model.weights_file = merged;
  GptModel<float> plain(merged_cfg.model, cfg.lora, comm, 1, 8);
  read_base_weights(merged, plain.base_layout(), 0, plain.base().data());
  plain.init_lora(1);  // B = 0: the LoRA branches add nothing
  std::vector<int32_t> tokens = {1, 5, 9, 3, 30, 2, 7, 11};
  std::vector<float> mask(8, 1.0f);
  const MicroBatch mb{tokens.data(), tokens.data(), mask.data(), 1, 8};
  std::vector<float> a, b;
  adapted.logits(mb, a);
  plain.logits(mb, b);
  double diff = 0, norm = 0;
  for (size_t i = 0; i < a.size(); ++i) diff += double(a[i] - b[i]) * (a[i] - b[i]), norm += double(a[i]) * a[i];
  EXPECT_LT(std::sqrt(diff / norm), 1e-5);
  EXPECT_NE(adapted.base(), plain.base());  // the adapter really moved W0

  RunConfig other_alpha = cfg;
  other_alpha.lora.alpha = 4;
  try {
    merge_adapter_into_base(other_alpha, adapter, merged);
    FAIL() << "an adapter trained with alpha 8 was merged with alpha 4";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("LoRA scale"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace lora
