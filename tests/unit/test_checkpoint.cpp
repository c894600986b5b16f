// io/checkpoint on one process (MPI_COMM_SELF, tp = dp = 1): the schema, a bit-exact round
// trip, reading any TP rank's slice of a full-shape file, and each way a checkpoint is
// refused (truncated, not HDF5, flipped bit, other r / targets / base / model shape) with
// its own message; resume: auto skipping a bad newest file; keep_last.
// Multi-rank saving and resuming through the real binary: tests/checkpoint/.
#include <gtest/gtest.h>
#include <hdf5.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "comm/mpi_communicator.h"
#include "io/checkpoint.h"
#include "tests/model_shape.h"
#include "io/checkpoint_hash.h"
#include "io/hdf5_util.h"
#include "model/tensor_shards.h"

namespace fs = std::filesystem;
using namespace lora;

namespace {

RunConfig small_config(const fs::path& out) {
  RunConfig c;
  c.model = test::model_shape(2, 2, 16, 32, 8);
  c.lora.r = 2;
  for (bool& t : c.lora.targets) t = true;
  c.train.batch_size = 4;
  c.train.steps = 20;
  c.output.dir = out.string();
  return c;
}

// The trainable state of one rank at a given layout, filled with values that differ per
// element and per buffer, so a swapped or misplaced tensor shows.
struct State {
  LoraLayout layout;
  int tp_rank;
  std::vector<float> params, m, v;
  State(const RunConfig& c, int tp, int tp_rank_, float salt = 0)
      : layout(lora_layout(c.model, c.lora, tp)), tp_rank(tp_rank_), params(layout.total), m(layout.total),
        v(layout.total) {
    for (size_t i = 0; i < layout.total; ++i) {
      params[i] = 0.001f * static_cast<float>(i) + salt;
      m[i] = -0.5f * params[i];
      v[i] = params[i] * params[i];
    }
  }
  LoraSlices slices() { return LoraSlices{layout, tp_rank, params.data(), m.data(), v.data()}; }
};

class CheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::path(LORA_BINARY_DIR) / "test_checkpoint" / info->name();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    cfg_ = small_config(dir_);
    fp_ = base_fingerprint(cfg_.model);
  }

  std::string save(int step, const RunConfig& c, float salt = 0) {
    State s(c, 1, 0, salt);
    const std::string path = checkpoint_path(c.output.dir, step);
    save_checkpoint(comm_, c, base_fingerprint(c.model), s.slices(), TrainCounters{step, step + 100L}, path);
    return path;
  }
  std::string save(int step) { return save(step, cfg_); }

  // The CheckpointError verify_checkpoint throws for `path` against `c` (fails the test if none).
  CheckpointError refusal(const std::string& path, const RunConfig& c) {
    try {
      verify_checkpoint(path, c, base_fingerprint(c.model));
    } catch (const CheckpointError& e) {
      return e;
    }
    ADD_FAILURE() << path << " was accepted";
    return CheckpointError(CheckpointError::Corrupt, "");
  }

  MpiCommunicator comm_{MPI_COMM_SELF, 1, 1};
  fs::path dir_;
  RunConfig cfg_;
  BaseFingerprint fp_;
};

void flip_bit(const std::string& path, uint64_t offset, int bit) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(static_cast<std::streamoff>(offset));
  char b = 0;
  f.read(&b, 1);
  b = static_cast<char>(b ^ (1 << bit));
  f.seekp(static_cast<std::streamoff>(offset));
  f.write(&b, 1);
}

// Byte offset of a (contiguous) dataset's values in its file.
uint64_t dataset_offset(const std::string& path, const std::string& name) {
  H5Handle file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  H5Handle ds(H5Dopen2(file, name.c_str(), H5P_DEFAULT), H5Dclose);
  return H5Dget_offset(ds);
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST_F(CheckpointTest, PathsAreStepNumberedUnderCheckpoints) {
  EXPECT_EQ(checkpoint_path("/o", 42), "/o/checkpoints/step_00000042.h5");
  EXPECT_EQ(checkpoint_dir("/o"), "/o/checkpoints");
}

TEST_F(CheckpointTest, SchemaHoldsFullShapesAndTheRunState) {
  const std::string path = save(7);
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  H5Handle file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  ASSERT_TRUE(file.valid());
  for (const char* group : {"/adapter", "/optimizer/m", "/optimizer/v"}) {
    // fc1: B is [4d, r], A is [r, d]; fc2: A is [r, 4d].
    H5Handle b(H5Dopen2(file, (std::string(group) + "/h.1.lora.fc1.B").c_str(), H5P_DEFAULT), H5Dclose);
    H5Handle a(H5Dopen2(file, (std::string(group) + "/h.0.lora.fc2.A").c_str(), H5P_DEFAULT), H5Dclose);
    ASSERT_TRUE(b.valid() && a.valid()) << group;
    EXPECT_EQ(h5_shape(b), (std::vector<hsize_t>{64, 2}));
    EXPECT_EQ(h5_shape(a), (std::vector<hsize_t>{2, 64}));
  }
  H5Handle adapter(H5Gopen2(file, "/adapter", H5P_DEFAULT), H5Gclose);
  H5Handle optimizer(H5Gopen2(file, "/optimizer", H5P_DEFAULT), H5Gclose);
  H5Handle state(H5Gopen2(file, "/state", H5P_DEFAULT), H5Gclose);
  EXPECT_EQ(h5_read_attr<int>(adapter, "r", path, "/adapter"), 2);
  EXPECT_EQ(h5_read_attr<std::string>(adapter, "targets", path, "/adapter"), "q,k,v,o,fc1,fc2");
  EXPECT_EQ(h5_read_attr<double>(adapter, "alpha", path, "/adapter"), 16.0);
  EXPECT_EQ(h5_read_attr<long>(optimizer, "adam_step", path, "/optimizer"), 107);
  EXPECT_EQ(h5_read_attr<int>(state, "step", path, "/state"), 7);
  EXPECT_EQ(h5_read_attr<long>(state, "samples_consumed", path, "/state"), 7 * 4);
  EXPECT_EQ(h5_read_attr<uint64_t>(state, "seed", path, "/state"), cfg_.train.seed);
  EXPECT_EQ(h5_read_attr<int>(state, "d_model", path, "/state"), 16);
  EXPECT_EQ(h5_read_attr<uint64_t>(state, "base_fingerprint", path, "/state"), fp_.hash);
  EXPECT_EQ(h5_read_attr<std::string>(state, "decay", path, "/state"), "cosine");
}

TEST_F(CheckpointTest, RoundTripIsBitExact) {
  const std::string path = save(3);
  const CheckpointInfo info = verify_checkpoint(path, cfg_, fp_);
  EXPECT_EQ(info.counters.step, 3);
  EXPECT_EQ(info.counters.adam_step, 103);
  EXPECT_EQ(info.written_tp, 1);
  EXPECT_TRUE(info.notes.empty());

  State want(cfg_, 1, 0), got(cfg_, 1, 0, /*salt=*/9.0f);
  const TrainCounters c = read_checkpoint(path, got.slices());
  EXPECT_EQ(c.step, 3);
  EXPECT_EQ(c.adam_step, 103);
  EXPECT_EQ(0, std::memcmp(want.params.data(), got.params.data(), want.params.size() * sizeof(float)));
  EXPECT_EQ(0, std::memcmp(want.m.data(), got.m.data(), want.m.size() * sizeof(float)));
  EXPECT_EQ(0, std::memcmp(want.v.data(), got.v.data(), want.v.size() * sizeof(float)));
}

// A file written at tp=1 read at tp=2 and tp=4: each rank's hyperslab reads must equal its
// slice of the full tensor (param_layout.h says which slice).
TEST_F(CheckpointTest, AnyTpRankReadsItsSliceOfTheFullTensors) {
  State full(cfg_, 1, 0);
  const std::string path = save(5);
  for (int tp : {2, 4}) {
    for (int rank = 0; rank < tp; ++rank) {
      State got(cfg_, tp, rank, /*salt=*/3.0f);
      read_checkpoint(path, got.slices());
      for (const TensorSpec& s : got.layout.tensors) {
        std::vector<float> want(s.local_size());
        slice_of_full_tensor(s, full.params.data() + full.layout.at(s.name).offset, rank, want.data());
        for (size_t i = 0; i < s.local_size(); ++i)
          ASSERT_EQ(got.params[s.offset + i], want[i]) << s.name << " tp=" << tp << " rank=" << rank << " i=" << i;
      }
    }
  }
}

TEST_F(CheckpointTest, TruncatedFileIsRefusedAsCorrupt) {
  const std::string path = save(2);
  fs::resize_file(path, fs::file_size(path) / 2);
  const CheckpointError e = refusal(path, cfg_);
  EXPECT_EQ(e.kind, CheckpointError::Corrupt);
  EXPECT_TRUE(contains(e.what(), path + ": not a readable HDF5 file (truncated or corrupted)")) << e.what();
}

TEST_F(CheckpointTest, NonHdf5FileIsRefusedAsCorrupt) {
  const std::string path = checkpoint_path(cfg_.output.dir, 1);
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path) << "not an HDF5 file\n";
  const CheckpointError e = refusal(path, cfg_);
  EXPECT_EQ(e.kind, CheckpointError::Corrupt);
  EXPECT_TRUE(contains(e.what(), "not a readable HDF5 file")) << e.what();
}

TEST_F(CheckpointTest, FlippedBitInATensorFailsTheChecksum) {
  for (const char* name : {"/adapter/h.1.lora.v.B", "/optimizer/v/h.0.lora.q.A"}) {
    const std::string path = save(4);
    flip_bit(path, dataset_offset(path, name) + 5, 3);
    const CheckpointError e = refusal(path, cfg_);
    EXPECT_EQ(e.kind, CheckpointError::Corrupt);
    EXPECT_TRUE(contains(e.what(), path + ": checksum mismatch: stored 0x")) << name << ": " << e.what();
  }
}

// The checksum covers the counters too: a step changed after the fact is caught.
TEST_F(CheckpointTest, ChangedStepAttributeFailsTheChecksum) {
  const std::string path = save(4);
  {
    H5Handle file(H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT), H5Fclose);
    H5Handle state(H5Gopen2(file, "/state", H5P_DEFAULT), H5Gclose);
    H5Adelete(state, "step");
    h5_write_attr(state, "step", 5);
  }
  EXPECT_TRUE(contains(refusal(path, cfg_).what(), "checksum mismatch"));
}

TEST_F(CheckpointTest, OtherLoraRankIsRefusedAsMismatch) {
  const std::string path = save(1);
  RunConfig other = cfg_;
  other.lora.r = 4;
  const CheckpointError e = refusal(path, other);
  EXPECT_EQ(e.kind, CheckpointError::Mismatch);
  EXPECT_TRUE(contains(e.what(), path + ": checkpoint does not fit this run: LoRA rank r differs: r 2 in the checkpoint, "
                                        "4 in this run"))
      << e.what();
}

TEST_F(CheckpointTest, OtherTargetsAreRefusedAsMismatch) {
  const std::string path = save(1);
  RunConfig other = cfg_;
  other.lora.targets[kFc2] = false;
  const CheckpointError e = refusal(path, other);
  EXPECT_EQ(e.kind, CheckpointError::Mismatch);
  EXPECT_TRUE(contains(e.what(), "LoRA targets differ: targets q,k,v,o,fc1,fc2 in the checkpoint, q,k,v,o,fc1 in this run"))
      << e.what();
}

TEST_F(CheckpointTest, OtherBaseIsRefusedWithBothFingerprints) {
  const std::string path = save(1);
  RunConfig other = cfg_;
  other.model.init_seed = 999;
  const CheckpointError e = refusal(path, other);
  EXPECT_EQ(e.kind, CheckpointError::Mismatch);
  EXPECT_TRUE(contains(e.what(), "base model fingerprint differs: 0x")) << e.what();
  EXPECT_TRUE(contains(e.what(), "(init: seed, init_seed 1234, init_std 0.02) in the checkpoint")) << e.what();
  EXPECT_TRUE(contains(e.what(), "(init: seed, init_seed 999, init_std 0.02) in this run")) << e.what();
}

TEST_F(CheckpointTest, OtherModelShapeIsRefusedNamingTheField) {
  const std::string path = save(1);
  RunConfig other = cfg_;
  other.model.n_layer = 3;
  const CheckpointError e = refusal(path, other);
  EXPECT_EQ(e.kind, CheckpointError::Mismatch);
  EXPECT_TRUE(contains(e.what(), "model shape differs: n_layer 2 in the checkpoint, 3 in this run")) << e.what();
  EXPECT_FALSE(contains(e.what(), "fingerprint")) << "a shape change implies a fingerprint change: " << e.what();
}

TEST_F(CheckpointTest, AllowedChangesBecomeNotes) {
  const std::string path = save(1);
  RunConfig other = cfg_;
  other.optim.lr = 1e-3f;
  other.train.steps = 40;
  const CheckpointInfo info = verify_checkpoint(path, other, fp_);
  ASSERT_EQ(info.notes.size(), 2u);
  EXPECT_TRUE(contains(info.notes[0], "train.steps 20 in the checkpoint, 40 in this run")) << info.notes[0];
  EXPECT_TRUE(contains(info.notes[1], "optim.lr")) << info.notes[1];
}

TEST_F(CheckpointTest, ResumeModesNoneAndPath) {
  const std::string path = save(6);
  std::ostringstream log;
  cfg_.checkpoint.resume = "none";
  EXPECT_FALSE(select_checkpoint(cfg_, fp_, log));
  cfg_.checkpoint.resume = path;
  EXPECT_EQ(select_checkpoint(cfg_, fp_, log)->counters.step, 6);
  fs::resize_file(path, 100);
  EXPECT_THROW(select_checkpoint(cfg_, fp_, log), CheckpointError);  // a named file is that file or nothing
}

TEST_F(CheckpointTest, AutoTakesTheNewestGoodAndReportsTheBadOne) {
  save(1);
  save(2);
  const std::string bad = save(3);
  fs::resize_file(bad, fs::file_size(bad) - 200);
  std::ofstream(bad + ".tmp") << "a killed writer's leftovers";  // never a candidate
  cfg_.checkpoint.resume = "auto";
  std::ostringstream log;
  const auto info = select_checkpoint(cfg_, fp_, log);
  ASSERT_TRUE(info);
  EXPECT_EQ(info->counters.step, 2);
  EXPECT_EQ(info->path, checkpoint_path(cfg_.output.dir, 2));
  EXPECT_TRUE(contains(log.str(), "lora_dist: warning: skipping checkpoint " + bad + ": ")) << log.str();
}

TEST_F(CheckpointTest, AutoRefusesAMismatchInsteadOfSkippingIt) {
  save(1);
  cfg_.checkpoint.resume = "auto";
  cfg_.lora.r = 8;
  std::ostringstream log;
  try {
    select_checkpoint(cfg_, fp_, log);
    FAIL() << "accepted a checkpoint of another LoRA rank";
  } catch (const CheckpointError& e) {
    EXPECT_EQ(e.kind, CheckpointError::Mismatch);
  }
}

TEST_F(CheckpointTest, AutoWithNothingToResumeStartsFresh) {
  cfg_.checkpoint.resume = "auto";
  std::ostringstream log;
  EXPECT_FALSE(select_checkpoint(cfg_, fp_, log));
}

TEST_F(CheckpointTest, KeepLastDeletesTheOldestAndStaleTemporaries) {
  for (int step = 1; step <= 5; ++step) save(step);
  const std::string stale = checkpoint_path(cfg_.output.dir, 6) + ".tmp";
  std::ofstream(stale) << "partial";
  prune_checkpoints(cfg_.output.dir, 2);
  for (int step = 1; step <= 5; ++step) EXPECT_EQ(fs::exists(checkpoint_path(cfg_.output.dir, step)), step >= 4) << step;
  EXPECT_FALSE(fs::exists(stale));
}

TEST_F(CheckpointTest, AdapterFileHoldsOnlyTheAdapter) {
  State s(cfg_, 1, 0);
  const std::string path = (dir_ / "adapter.h5").string();
  const uint64_t bytes = save_adapter(comm_, cfg_, fp_, s.slices(), path);
  EXPECT_EQ(bytes, fs::file_size(path));
  H5Handle file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  EXPECT_GT(H5Lexists(file, "adapter", H5P_DEFAULT), 0);
  EXPECT_EQ(H5Lexists(file, "optimizer", H5P_DEFAULT), 0);
  EXPECT_EQ(H5Lexists(file, "state", H5P_DEFAULT), 0);
  H5Handle adapter(H5Gopen2(file, "/adapter", H5P_DEFAULT), H5Gclose);
  EXPECT_EQ(h5_read_attr<int>(adapter, "r", path, "/adapter"), 2);
  EXPECT_EQ(h5_read_attr<uint64_t>(adapter, "base_fingerprint", path, "/adapter"), fp_.hash);
  H5Handle ds(H5Dopen2(adapter, "h.1.lora.o.B", H5P_DEFAULT), H5Dclose);
  std::vector<float> got(16 * 2);
  H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, got.data());
  const TensorSpec& spec = s.layout.at("h.1.lora.o.B");
  EXPECT_EQ(0, std::memcmp(got.data(), s.params.data() + spec.offset, got.size() * sizeof(float)));
}

TEST_F(CheckpointTest, FileFingerprintFollowsTheBytes) {
  const fs::path a = dir_ / "a.h5", b = dir_ / "b.h5";
  std::ofstream(a) << std::string(10000, 'x');
  std::ofstream(b) << std::string(9999, 'x') << 'y';
  ModelConfig m = cfg_.model;
  m.init = "file";
  m.weights_file = a.string();
  const BaseFingerprint fa = base_fingerprint(m);
  m.weights_file = b.string();
  EXPECT_NE(fa.hash, base_fingerprint(m).hash);
  fs::copy_file(a, dir_ / "copy.h5");
  m.weights_file = (dir_ / "copy.h5").string();
  EXPECT_EQ(fa.hash, base_fingerprint(m).hash);  // the bytes, not the path
}

TEST(Hash64, DigestDoesNotDependOnHowTheStreamIsCut) {
  std::string data;
  for (int i = 0; i < 1000; ++i) data += static_cast<char>(i * 37);
  const uint64_t whole = Hash64().update(data.data(), data.size()).digest();
  for (size_t cut : {1, 3, 7, 8, 9, 500, 999}) {
    Hash64 h;
    h.update(data.data(), cut).update(data.data() + cut, data.size() - cut);
    EXPECT_EQ(h.digest(), whole) << cut;
  }
  EXPECT_NE(Hash64().update(data.data(), 999).digest(), whole);
  std::string zeros(16, '\0');
  EXPECT_NE(Hash64().update(zeros.data(), 8).digest(), Hash64().update(zeros.data(), 16).digest());
}
