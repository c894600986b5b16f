// Base weights in HDF5: a file written from the full model is read back by every TP rank
// as exactly its slice (padding rows zero), and bad files are refused by name.
#include <gtest/gtest.h>

#include <filesystem>

#include "io/base_weights.h"
#include "model/rng.h"
#include "model/tensor_shards.h"
#include "tests/model_shape.h"

namespace lora {
namespace {

ModelConfig small() { return test::model_shape(2, 4, 8, 13, 5); }  // V=13 is padded to 16 at tp=4

std::string temp_file(const char* name) { return (std::filesystem::path(testing::TempDir()) / name).string(); }

TEST(BaseWeights, EveryTpRankReadsItsSliceOfTheFullFile) {
  const ModelConfig m = small();
  const ParamLayout full = base_layout(m, 1);
  std::vector<float> values(full.total);
  for (size_t i = 0; i < values.size(); ++i) values[i] = static_cast<float>(uniform_element(4, RngPurpose::BaseInit, 0, i, 1.0));
  const std::string path = temp_file("base_slices.h5");
  write_base_weights(path, full, values.data());
  for (int tp : {1, 2, 4}) {
    const ParamLayout layout = base_layout(m, tp);
    for (int rank = 0; rank < tp; ++rank) {
      std::vector<float> read(layout.total, -1.0f), expected(layout.total);
      read_base_weights(path, layout, rank, read.data());
      for (const TensorSpec& s : layout.tensors)
        slice_of_full_tensor(s, values.data() + full.at(s.name).offset, rank, expected.data() + s.offset);
      EXPECT_EQ(read, expected) << "tp=" << tp << " rank " << rank;
    }
  }
}

TEST(BaseWeights, MissingOrMisshapedDatasetsAreNamed) {
  const std::string path = temp_file("base_small.h5");
  const ParamLayout layout = base_layout(small(), 1);
  std::vector<float> values(layout.total, 0.5f);
  write_base_weights(path, layout, values.data());
  ModelConfig deeper = small();
  deeper.n_layer = 3;
  std::vector<float> buf(base_layout(deeper, 1).total);
  try {
    read_base_weights(path, base_layout(deeper, 1), 0, buf.data());
    FAIL() << "a file of a 2-layer model was read as a 3-layer one";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(path + ": missing dataset 'h.2.ln_1.weight'"), std::string::npos) << e.what();
  }
  ModelConfig wider = small();
  wider.d_model = 12;
  std::vector<float> buf2(base_layout(wider, 1).total);
  try {
    read_base_weights(path, base_layout(wider, 1), 0, buf2.data());
    FAIL() << "a d=8 file was read as d=12";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("dataset 'wte' has shape [13, 8], the model config needs [13, 12]"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(read_base_weights(temp_file("no_such.h5"), layout, 0, values.data()), std::runtime_error);
}

}  // namespace
}  // namespace lora
