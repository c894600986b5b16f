// `lora_dist merge`: base + adapter, folded into one set of weights, gives the same logits
// as the base with its LoRA branches; an adapter that does not fit the config (scale, r,
// targets, base) or is damaged is refused naming the file and what differs, and nothing is
// written.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "comm/mpi_communicator.h"
#include "io/base_weights.h"
#include "io/checkpoint.h"
#include "io/file_seal.h"
#include "model/gpt.h"
#include "model/rng.h"
#include "tests/model_shape.h"
#include "trainer/train/adamw.h"
#include "trainer/export/merge.h"
#include "unique_temp_path.h"

namespace lora {
namespace {

namespace fs = std::filesystem;

RunConfig config(const fs::path& dir) {
  RunConfig c;
  c.model = test::model_shape(2, 2, 16, 32, 8);
  c.model.init_std = 0.2f;
  c.lora.r = 4;
  c.lora.alpha = 8;
  for (const int t : gpt_spec(c.model).lora_targets) c.lora.targets[t] = true;
  c.output.dir = dir.string();
  return c;
}

// Seeds `adapted`'s base from cfg, gives it a random adapter (B != 0) and saves that as `path`.
void random_adapter(const RunConfig& cfg, Communicator& comm, GptModel<float>& adapted, const std::string& path) {
  adapted.init_base_from_seed(cfg.model.init_seed);
  auto& p = adapted.lora_params();
  for (size_t i = 0; i < p.size(); ++i) p[i] = static_cast<float>(uniform_element(3, RngPurpose::LoraInit, 9, i, 0.3));
  AdamW unused(p.size());
  save_adapter(comm, cfg.model, cfg.lora, base_fingerprint(cfg.model),
               LoraSlices{adapted.lora_layout(), 0, p.data(), unused.m.data(), unused.v.data()}, path);
}

TEST(Merge, MergedWeightsGiveTheAdaptedLogits) {
  const fs::path dir = test::unique_temp_path("merge_test");
  fs::create_directories(dir);
  RunConfig cfg = config(dir);
  MpiCommunicator comm(MPI_COMM_SELF, 1, 1);
  GptModel<float> adapted(cfg.model, cfg.lora, comm, 1, 8);
  const std::string adapter = (dir / "adapter.h5").string(), merged = (dir / "merged.h5").string();
  random_adapter(cfg, comm, adapted, adapter);

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
  } catch (const CheckpointError& e) {  // an InputError: exit status 3
    EXPECT_NE(std::string(e.what()).find(adapter + ": adapter does not fit this run: LoRA scale (alpha/r) differs: 2 in "
                                         "the adapter, 1 in this run"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace lora

namespace lora {
namespace {

// An adapter trained with config(dir), saved as adapter.h5.
class MergeRefusal : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test::unique_temp_path("merge_refusal");
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    cfg_ = config(dir_);
    GptModel<float> model(cfg_.model, cfg_.lora, comm_, 1, 8);
    auto& p = model.lora_params();
    for (size_t i = 0; i < p.size(); ++i) p[i] = 0.01f * static_cast<float>(i % 17);
    AdamW unused(p.size());
    adapter_ = (dir_ / "adapter.h5").string();
    save_adapter(comm_, cfg_.model, cfg_.lora, base_fingerprint(cfg_.model),
                 LoraSlices{model.lora_layout(), 0, p.data(), unused.m.data(), unused.v.data()}, adapter_);
    out_ = (dir_ / "merged.h5").string();
  }

  // The error merge throws for `adapter` under `c`; the output must not have been written.
  std::string refusal(const RunConfig& c, const std::string& adapter) {
    try {
      merge_adapter_into_base(c, adapter, out_);
    } catch (const CheckpointError& e) {
      EXPECT_FALSE(fs::exists(out_)) << "merged weights written despite: " << e.what();
      return e.what();
    }
    ADD_FAILURE() << adapter << " was merged";
    return "";
  }

  MpiCommunicator comm_{MPI_COMM_SELF, 1, 1};
  fs::path dir_;
  RunConfig cfg_;
  std::string adapter_, out_;
};

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

TEST_F(MergeRefusal, OtherTargetsAreRefused) {
  RunConfig c = cfg_;
  c.lora.targets[kK] = false;
  const std::string e = refusal(c, adapter_);
  EXPECT_TRUE(contains(e, adapter_ + ": adapter does not fit this run: LoRA targets differ: targets q,k,v,o,fc1,fc2 in "
                                     "the adapter, q,v,o,fc1,fc2 in this run"))
      << e;
}

TEST_F(MergeRefusal, OtherRankIsRefused) {
  RunConfig c = cfg_;
  c.lora.r = 8;
  c.lora.alpha = 16;  // the same scale: r itself must be checked
  const std::string e = refusal(c, adapter_);
  EXPECT_TRUE(contains(e, "LoRA rank r differs: r 4 in the adapter, 8 in this run")) << e;
}

TEST_F(MergeRefusal, OtherBaseIsRefused) {
  RunConfig c = cfg_;
  c.model.init_seed = 77;
  const std::string e = refusal(c, adapter_);
  EXPECT_TRUE(contains(e, "base model fingerprint differs: 0x")) << e;
  EXPECT_TRUE(contains(e, "(init: seed, init_seed 1234, init_std 0.2) in the adapter")) << e;
  EXPECT_TRUE(contains(e, "(init: seed, init_seed 77, init_std 0.2) in this run")) << e;
}

TEST_F(MergeRefusal, OtherModelShapeIsRefused) {
  RunConfig c = cfg_;
  c.model.n_layer = 3;
  const std::string e = refusal(c, adapter_);
  EXPECT_TRUE(contains(e, "model shape differs: n_layer 2 in the adapter, 3 in this run")) << e;
}

TEST_F(MergeRefusal, CorruptAdapterIsRefusedBeforeParsing) {
  const uint64_t size = fs::file_size(adapter_);
  for (uint64_t offset : {uint64_t(3), kSealBytes + 10, size / 2, size - 2}) {
    const std::string bad = (dir_ / "bad.h5").string();
    fs::copy_file(adapter_, bad, fs::copy_options::overwrite_existing);
    std::fstream f(bad, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(offset));
    const char b = static_cast<char>(f.get() ^ 0x20);
    f.seekp(static_cast<std::streamoff>(offset));
    f.put(b);
    f.close();
    const std::string e = refusal(cfg_, bad);
    EXPECT_TRUE(contains(e, bad + ": ")) << e;
  }
  const std::string truncated = (dir_ / "truncated.h5").string();
  fs::copy_file(adapter_, truncated, fs::copy_options::overwrite_existing);
  fs::resize_file(truncated, size - 100);
  EXPECT_TRUE(contains(refusal(cfg_, truncated), truncated + ": truncated or extended"));
}

TEST_F(MergeRefusal, MergedFileIsSealedAndReadBack) {
  merge_adapter_into_base(cfg_, adapter_, out_);
  EXPECT_NO_THROW(verify_seal(out_));
  EXPECT_FALSE(fs::exists(out_ + ".tmp"));
}

// A run trained with model.dtype bf16 merges in fp32 (its base file format), to the same bytes.
TEST_F(MergeRefusal, Bf16RunMergesLikeFp32) {
  merge_adapter_into_base(cfg_, adapter_, out_);
  std::ifstream a(out_, std::ios::binary);
  const std::string fp32((std::istreambuf_iterator<char>(a)), {});
  RunConfig bf16 = cfg_;
  bf16.model.dtype = "bf16";
  const std::string out_bf16 = out_ + ".bf16.h5";
  merge_adapter_into_base(bf16, adapter_, out_bf16);
  std::ifstream b(out_bf16, std::ios::binary);
  const std::string from_bf16((std::istreambuf_iterator<char>(b)), {});
  EXPECT_EQ(fp32, from_bf16);
}

// model.dtype nf4: the adapter is merged into the NF4 base it was trained on, dequantized, so
// the merged fp32 file gives the logits of the NF4 model with its LoRA branches (and not those
// of the unquantized source, which differ by the 4-bit error).
TEST(Merge, Nf4RunMergesIntoTheDequantizedBase) {
  const fs::path dir = test::unique_temp_path("merge_nf4_test");
  fs::create_directories(dir);
  RunConfig cfg = config(dir);
  cfg.model = test::model_shape(2, 2, 64, 32, 8);  // rows of whole 64-weight blocks
  cfg.model.init_std = 0.2f;
  cfg.model.dtype = "nf4";
  MpiCommunicator comm(MPI_COMM_SELF, 1, 1);
  GptModel<float> adapted(cfg.model, cfg.lora, comm, 1, 8);
  const std::string adapter = (dir / "adapter.h5").string(), merged = (dir / "merged.h5").string();
  random_adapter(cfg, comm, adapted, adapter);
  merge_adapter_into_base(cfg, adapter, merged);
  ModelConfig plain_cfg = cfg.model;
  plain_cfg.dtype = "fp32";
  GptModel<float> plain(plain_cfg, cfg.lora, comm, 1, 8), source(plain_cfg, cfg.lora, comm, 1, 8);
  read_base_weights(merged, plain.base_layout(), 0, plain.base().data());
  plain.init_lora(1);  // B = 0
  source.init_base_from_seed(cfg.model.init_seed);  // the unquantized base, with the same adapter
  source.lora_params() = adapted.lora_params();
  std::vector<int32_t> tokens = {1, 5, 9, 3, 30, 2, 7, 11};
  std::vector<float> mask(8, 1.0f);
  const MicroBatch mb{tokens.data(), tokens.data(), mask.data(), 1, 8};
  std::vector<float> a, b, c;
  adapted.logits(mb, a);
  plain.logits(mb, b);
  source.logits(mb, c);
  auto rel = [&](const std::vector<float>& x) {
    double diff = 0, norm = 0;
    for (size_t i = 0; i < a.size(); ++i) diff += double(a[i] - x[i]) * (a[i] - x[i]), norm += double(a[i]) * a[i];
    return std::sqrt(diff / norm);
  };
  EXPECT_LT(rel(b), 1e-5);
  EXPECT_GT(rel(c), 1e-3);  // the merge is of the quantized base, not of the source
  fs::remove_all(dir);
}

}  // namespace
}  // namespace lora
