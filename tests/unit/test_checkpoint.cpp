// io/checkpoint on one process (MPI_COMM_SELF, tp = dp = 1): the schema, a bit-exact round
// trip, reading any TP rank's slice of a full-shape file, and each way a checkpoint is
// refused with its own message: damaged (one bit flipped anywhere, truncated anywhere, not
// HDF5, unsealed) as Corrupt before libhdf5 parses it; other r / targets / base / model
// shape / tensor shape as Mismatch; a NaN or a counter out of range as Invalid. resume:
// auto skipping damaged newer files; keep_last.
// Multi-rank saving and resuming through the real binary: tests/checkpoint/.
#include <gtest/gtest.h>
#include <hdf5.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "comm/mpi_communicator.h"
#include "io/checkpoint.h"
#include "tests/model_shape.h"
#include "io/checkpoint_hash.h"
#include "io/file_seal.h"
#include "io/hdf5_util.h"
#include "model/tensor_shards.h"
#include "trainer/train/checkpoint_run.h"
#include "trainer/train/lr_schedule.h"

namespace fs = std::filesystem;
using namespace lora;

namespace {

RunConfig small_config(const fs::path& out) {
  RunConfig c;
  c.model = test::model_shape(2, 2, 16, 32, 8);
  c.lora.r = 2;
  for (const int t : gpt_spec(c.model).lora_targets) c.lora.targets[t] = true;
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
    save_checkpoint(comm_, checkpoint_run(c), base_fingerprint(c.model), s.slices(), TrainCounters{step, step + 100L},
                    checkpoint_lr_next(c, step), path);
    return path;
  }
  std::string save(int step) { return save(step, cfg_); }

  // A checkpoint of `s` with arbitrary counters, written by the real writer (so sealed).
  std::string save_state(State& s, TrainCounters c, int step_in_name) {
    const std::string path = checkpoint_path(cfg_.output.dir, step_in_name);
    save_checkpoint(comm_, checkpoint_run(cfg_), fp_, s.slices(), c, checkpoint_lr_next(cfg_, c.step), path);
    return path;
  }

  // The CheckpointError verify_checkpoint throws for `path` against `c` (fails the test if none).
  CheckpointError refusal(const std::string& path, const RunConfig& c) {
    try {
      verify_checkpoint(path, checkpoint_run(c), base_fingerprint(c.model));
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

// Re-seals `path` after a test edited it through libhdf5: a file that verifies yet holds
// what the writer never writes (a huge shape, a negative step, an integer tensor).
void reseal(const std::string& path) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  const std::string zeros(kSealBytes, '\0');
  f.write(zeros.data(), zeros.size());
  f.close();
  seal_file(path);
}

// Opens `path` read-write through libhdf5 (the user block is kept), runs edit(file), closes.
template <typename Edit>
void edit_h5(const std::string& path, Edit edit) {
  {
    H5Handle file(H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT), H5Fclose);
    ASSERT_TRUE(file.valid()) << path;
    edit(file.get());
  }
  reseal(path);
}

// Offsets spread over the whole file, plus every byte of the seal's header and of the
// HDF5 superblock that follows the user block.
std::vector<uint64_t> sweep_offsets(uint64_t size, int spread) {
  std::vector<uint64_t> at;
  for (int i = 0; i < spread; ++i) at.push_back(size * static_cast<uint64_t>(i) / static_cast<uint64_t>(spread));
  for (uint64_t o = 0; o < 48; ++o) at.push_back(o);
  for (uint64_t o = kSealBytes; o < kSealBytes + 96 && o < size; ++o) at.push_back(o);
  at.push_back(size - 1);
  return at;
}

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
  EXPECT_EQ(h5_read_attr<double>(state, "lr_next", path, "/state"), double(learning_rate(cfg_.optim, 7, 20)));
}

// trainer/train/checkpoint_run's mapping: every key io/checkpoint records or checks, from its section.
TEST_F(CheckpointTest, CheckpointRunCarriesEveryKeyFromItsSection) {
  RunConfig c = cfg_;
  c.model.init_seed = 77;
  c.lora.alpha = 3;
  c.train.steps = 31, c.train.batch_size = 6, c.train.seq_len = 12, c.train.seed = 5;
  c.optim.lr = 0.5f, c.optim.weight_decay = 0.25f, c.optim.beta1 = 0.8f, c.optim.beta2 = 0.9f, c.optim.eps = 1e-6f;
  c.optim.warmup_steps = 3, c.optim.decay = "linear", c.optim.min_lr_ratio = 0.125f;
  c.checkpoint.resume = "auto";
  const CheckpointRun r = checkpoint_run(c);
  EXPECT_EQ(r.model.init_seed, 77u);
  EXPECT_EQ(r.model.d_model, c.model.d_model);
  EXPECT_EQ(r.lora.alpha, 3.0f);
  EXPECT_EQ(r.lora.target_list(), c.lora.target_list());
  EXPECT_EQ(r.train.steps, 31);
  EXPECT_EQ(r.train.batch_size, 6);
  EXPECT_EQ(r.train.seq_len, 12);
  EXPECT_EQ(r.train.seed, 5u);
  EXPECT_EQ(r.optim.lr, 0.5f);
  EXPECT_EQ(r.optim.weight_decay, 0.25f);
  EXPECT_EQ(r.optim.beta1, 0.8f);
  EXPECT_EQ(r.optim.beta2, 0.9f);
  EXPECT_EQ(r.optim.eps, 1e-6f);
  EXPECT_EQ(r.optim.warmup_steps, 3);
  EXPECT_EQ(r.optim.decay, "linear");
  EXPECT_EQ(r.optim.min_lr_ratio, 0.125f);
  EXPECT_EQ(r.resume, "auto");
  EXPECT_EQ(r.output_dir, cfg_.output.dir);
  EXPECT_EQ(checkpoint_lr_next(c, 10), learning_rate(c.optim, 10, 31));
}

TEST_F(CheckpointTest, RoundTripIsBitExact) {
  const std::string path = save(3);
  const CheckpointInfo info = verify_checkpoint(path, checkpoint_run(cfg_), fp_);
  EXPECT_EQ(info.counters.step, 3);
  EXPECT_EQ(info.counters.adam_step, 103);
  EXPECT_EQ(info.written_tp, 1);
  EXPECT_TRUE(info.notes.empty());

  State want(cfg_, 1, 0), got(cfg_, 1, 0, /*salt=*/9.0f);
  const TrainCounters c = read_checkpoint(path, got.slices(), false);
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
      read_checkpoint(path, got.slices(), false);
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
  const uint64_t size = fs::file_size(path);
  fs::resize_file(path, size / 2);
  const CheckpointError e = refusal(path, cfg_);
  EXPECT_EQ(e.kind, CheckpointError::Corrupt);
  EXPECT_TRUE(contains(e.what(), path + ": truncated or extended: the seal records " + std::to_string(size) +
                                     " bytes, the file has " + std::to_string(size / 2)))
      << e.what();
}

TEST_F(CheckpointTest, NonHdf5FileIsRefusedAsCorrupt) {
  const std::string path = checkpoint_path(cfg_.output.dir, 1);
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path) << "not an HDF5 file\n";
  const CheckpointError e = refusal(path, cfg_);
  EXPECT_EQ(e.kind, CheckpointError::Corrupt);
  EXPECT_TRUE(contains(e.what(), path + ": no lora_dist seal")) << e.what();
}

// A v1 file (or any HDF5 file lora_dist did not seal) cannot be checked before libhdf5
// parses it, so it is refused whatever it holds; the message says why.
TEST_F(CheckpointTest, UnsealedHdf5FileIsRefusedAsUnverifiable) {
  const std::string path = checkpoint_path(cfg_.output.dir, 1);
  fs::create_directories(fs::path(path).parent_path());
  {
    H5Handle file(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose);
    H5Handle state(H5Gcreate2(file, "/state", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose);
    h5_write_attr(state, "format", "lora_dist checkpoint v1");
  }
  const CheckpointError e = refusal(path, cfg_);
  EXPECT_EQ(e.kind, CheckpointError::Corrupt);
  EXPECT_TRUE(contains(e.what(), path + ": no lora_dist seal (LDCKSUM1)")) << e.what();
  EXPECT_TRUE(contains(e.what(), "older than checkpoint format v2")) << e.what();
}

// One bit flipped anywhere -- seal header, user block padding, superblock, object and
// attribute headers, heaps, tensor values -- is refused as Corrupt naming the file, by the
// seal, before libhdf5 sees the file (the issue-8 crash was libhdf5 parsing such a file).
TEST_F(CheckpointTest, OneFlippedBitAnywhereIsRefusedAsCorrupt) {
  const std::string good = save(4);
  const std::string path = (dir_ / "flipped.h5").string();
  const uint64_t size = fs::file_size(good);
  int tried = 0;
  for (uint64_t offset : sweep_offsets(size, 200)) {
    fs::copy_file(good, path, fs::copy_options::overwrite_existing);
    flip_bit(path, offset, static_cast<int>(offset % 8));
    const CheckpointError e = refusal(path, cfg_);
    ASSERT_EQ(e.kind, CheckpointError::Corrupt) << "offset " << offset << ": " << e.what();
    ASSERT_TRUE(contains(e.what(), path + ": ")) << "offset " << offset << ": " << e.what();
    ++tried;
  }
  EXPECT_GT(tried, 300);
  EXPECT_NO_THROW(verify_checkpoint(good, checkpoint_run(cfg_), fp_));
}

TEST_F(CheckpointTest, TruncatedAtAnyLengthIsRefusedAsCorrupt) {
  const std::string good = save(4);
  const std::string path = (dir_ / "truncated.h5").string();
  const uint64_t size = fs::file_size(good);
  std::vector<uint64_t> lengths = {0, 1, 7, 8, 40, kSealBytes - 1, kSealBytes, kSealBytes + 1, size - 8, size - 1};
  for (int i = 1; i < 100; ++i) lengths.push_back(size * static_cast<uint64_t>(i) / 100);
  for (uint64_t n : lengths) {
    fs::copy_file(good, path, fs::copy_options::overwrite_existing);
    fs::resize_file(path, n);
    const CheckpointError e = refusal(path, cfg_);
    ASSERT_EQ(e.kind, CheckpointError::Corrupt) << "length " << n << ": " << e.what();
    ASSERT_TRUE(contains(e.what(), path + ": ")) << "length " << n << ": " << e.what();
  }
  fs::copy_file(good, path, fs::copy_options::overwrite_existing);
  std::ofstream(path, std::ios::app) << "x";  // extended is no better than truncated
  EXPECT_EQ(refusal(path, cfg_).kind, CheckpointError::Corrupt);
}

// A NaN in any of the three tensor groups, in a file that verifies, is refused naming the
// tensor, and resume: auto stops rather than skipping it.
TEST_F(CheckpointTest, NonFiniteTensorIsRefusedNamingIt) {
  const State shape(cfg_, 1, 0);
  const TensorSpec& spec = shape.layout.at("h.1.lora.v.B");
  struct Case {
    std::vector<float> State::*buffer;
    const char* group;
    float value;
  };
  const Case cases[] = {{&State::params, "/adapter", NAN},
                        {&State::m, "/optimizer/m", INFINITY},
                        {&State::v, "/optimizer/v", NAN}};
  for (const Case& c : cases) {
    State s(cfg_, 1, 0);
    (s.*c.buffer)[spec.offset + 3] = c.value;
    const std::string path = save_state(s, TrainCounters{5, 5}, 5);
    const CheckpointError e = refusal(path, cfg_);
    EXPECT_EQ(e.kind, CheckpointError::Invalid) << c.group;
    EXPECT_TRUE(contains(e.what(), path + ": tensor '" + c.group + "/h.1.lora.v.B' holds a non-finite value"))
        << e.what();
    State into(cfg_, 1, 0);
    EXPECT_THROW(read_checkpoint(path, into.slices(), false), CheckpointError) << c.group;  // every rank checks its slice
    cfg_.checkpoint.resume = "auto";
    std::ostringstream log;
    EXPECT_THROW(select_checkpoint(checkpoint_run(cfg_), fp_, log), CheckpointError) << c.group;
    fs::remove(path);
  }
}

TEST_F(CheckpointTest, CountersOutOfRangeAreRefused) {
  State s(cfg_, 1, 0);
  const struct {
    TrainCounters c;
    const char* expect;
  } cases[] = {{{-1, 0}, "/state: attribute 'step' = -1 is outside [0, 20] (train.steps of this run)"},
               {{21, 21}, "/state: attribute 'step' = 21 is outside [0, 20] (train.steps of this run)"},
               {{3, -7}, "/optimizer: attribute 'adam_step' = -7 is outside [0, 2147483647] (INT_MAX)"},
               {{3, 1L << 40}, "/optimizer: attribute 'adam_step' = 1099511627776 is outside [0, 2147483647]"}};
  for (const auto& c : cases) {
    const std::string path = save_state(s, c.c, 1);
    const CheckpointError e = refusal(path, cfg_);
    EXPECT_EQ(e.kind, CheckpointError::Invalid) << c.expect;
    EXPECT_TRUE(contains(e.what(), path + ": " + c.expect)) << e.what();
  }
  // A step beyond INT_MAX, as a file could hold it (the writer's counter is an int).
  const std::string path = save(2);
  edit_h5(path, [](hid_t file) {
    H5Handle state(H5Gopen2(file, "/state", H5P_DEFAULT), H5Gclose);
    H5Adelete(state, "step");
    h5_write_attr(state, "step", int64_t(1) << 33);
  });
  EXPECT_TRUE(contains(refusal(path, cfg_).what(), "attribute 'step' = 8589934592 is outside [0, 20]"));
}

// Values no run can produce, in a file that verifies (edited by a tool and resealed): each is
// refused as Invalid naming the dataset or attribute, and resume: auto stops rather than
// falling back to an older checkpoint. The untouched file is accepted, so each case isolates its edit.
TEST_F(CheckpointTest, ImpossibleValuesOfAResealedFileAreRefused) {
  const auto set_double = [](const char* group, const char* name, double value) {
    return [=](hid_t file) {
      H5Handle g(H5Gopen2(file, group, H5P_DEFAULT), H5Gclose);
      H5Adelete(g, name);
      h5_write_attr(g, name, value);
    };
  };
  const auto set_int = [](const char* group, const char* name, int64_t value) {
    return [=](hid_t file) {
      H5Handle g(H5Gopen2(file, group, H5P_DEFAULT), H5Gclose);
      H5Adelete(g, name);
      h5_write_attr(g, name, value);
    };
  };
  const auto set_string = [](const char* group, const char* name, const char* value) {
    return [=](hid_t file) {
      H5Handle g(H5Gopen2(file, group, H5P_DEFAULT), H5Gclose);
      H5Adelete(g, name);
      h5_write_attr(g, name, std::string(value));
    };
  };
  const auto set_element = [](const char* dataset, float value) {
    return [=](hid_t file) {
      H5Handle ds(H5Dopen2(file, dataset, H5P_DEFAULT), H5Dclose);
      std::vector<float> values(h5_shape(ds)[0] * h5_shape(ds)[1]);
      H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data());
      values[3] = value;
      H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data());
    };
  };
  struct Case {
    std::function<void(hid_t)> edit;
    std::string expect;
  };
  // The run: r 2, alpha 16 (scale 8), lr 3e-4, batch 4; the file is saved at step 5.
  const Case cases[] = {
      {set_element("/optimizer/v/h.0.lora.q.B", -1e-3f),
       "tensor '/optimizer/v/h.0.lora.q.B' holds a negative value (-0.001), which AdamW's second moments never are"},
      {set_double("/adapter", "scale", NAN), "/adapter: attribute 'scale' = nan is not a finite number (lora.alpha / r)"},
      {set_double("/adapter", "scale", 3.0), "/adapter: attribute 'scale' = 3, but alpha 16 and r 2 give 8"},
      {set_double("/adapter", "alpha", -16), "/adapter: attribute 'alpha' = -16 is outside (0, inf) (lora.alpha)"},
      {set_double("/adapter", "alpha", INFINITY), "/adapter: attribute 'alpha' = inf is not a finite number (lora.alpha)"},
      {set_double("/adapter", "dropout", 1.0), "/adapter: attribute 'dropout' = 1 is outside [0, 1) (lora.dropout)"},
      {set_double("/optimizer", "beta1", -0.1), "/optimizer: attribute 'beta1' = -0.1 is outside [0, 1) (optim.beta1)"},
      {set_double("/optimizer", "beta2", 1.0), "/optimizer: attribute 'beta2' = 1 is outside [0, 1) (optim.beta2)"},
      {set_double("/optimizer", "eps", 0.0), "/optimizer: attribute 'eps' = 0 is outside (0, inf) (optim.eps)"},
      {set_double("/optimizer", "weight_decay", NAN),
       "/optimizer: attribute 'weight_decay' = nan is not a finite number (optim.weight_decay)"},
      {set_double("/state", "lr", -3e-4), "/state: attribute 'lr' = -0.0003 is outside (0, inf) (optim.lr)"},
      {set_double("/state", "lr_next", 1.0), "/state: attribute 'lr_next' = 1 is outside [0, 0.0003"},
      {set_double("/state", "lr_next", NAN), "/state: attribute 'lr_next' = nan is not a finite number"},
      {set_double("/state", "min_lr_ratio", 2.0),
       "/state: attribute 'min_lr_ratio' = 2 is outside [0, 1] (optim.min_lr_ratio)"},
      {set_int("/state", "warmup_steps", -1),
       "/state: attribute 'warmup_steps' = -1 is outside [0, inf) (optim.warmup_steps)"},
      {set_string("/state", "decay", "exponential"),
       "/state: attribute 'decay' = 'exponential' is not one of cosine, linear, constant (optim.decay)"},
      {set_int("/state", "batch_size", 0), "/state: attribute 'batch_size' = 0 is outside [1, inf) (train.batch_size)"},
      {set_int("/state", "seq_len", 0), "/state: attribute 'seq_len' = 0 is outside [1, inf) (train.seq_len)"},
      {set_int("/state", "total_steps", -20), "/state: attribute 'total_steps' = -20 is outside [1, inf) (train.steps)"},
      {set_int("/state", "written_dp", 0), "/state: attribute 'written_dp' = 0 is outside [1, 2147483647] (parallel.dp)"},
      {set_int("/state", "samples_consumed", 7),
       "/state: attribute 'samples_consumed' = 7, but step 5 x batch_size 4 = 20"},
  };
  cfg_.lora.alpha = 16;
  cfg_.optim.lr = 3e-4f;
  const std::string good = save(5);
  EXPECT_NO_THROW(verify_checkpoint(good, checkpoint_run(cfg_), fp_));
  const std::string kept = (dir_ / "good.h5").string();
  fs::copy_file(good, kept);
  for (const Case& c : cases) {
    fs::copy_file(kept, good, fs::copy_options::overwrite_existing);
    edit_h5(good, c.edit);
    const CheckpointError e = refusal(good, cfg_);
    EXPECT_EQ(e.kind, CheckpointError::Invalid) << c.expect;
    EXPECT_TRUE(contains(e.what(), good + ": " + c.expect)) << e.what();
    cfg_.checkpoint.resume = "auto";
    std::ostringstream log;
    EXPECT_THROW(select_checkpoint(checkpoint_run(cfg_), fp_, log), CheckpointError) << c.expect;
    cfg_.checkpoint.resume = "none";
  }
}

// The same LoRA hyper-parameters in an adapter.h5 (merge, generate, lora.init_from, analyze read it).
TEST_F(CheckpointTest, ImpossibleValuesOfAResealedAdapterAreRefused) {
  const std::string path = (dir_ / "adapter.h5").string();
  State s(cfg_, 1, 0);
  save_adapter(comm_, cfg_.model, cfg_.lora, fp_, s.slices(), path);
  EXPECT_NO_THROW(read_adapter_lora_config(path));
  edit_h5(path, [](hid_t file) {
    H5Handle g(H5Gopen2(file, "/adapter", H5P_DEFAULT), H5Gclose);
    H5Adelete(g, "scale");
    h5_write_attr(g, "scale", double(NAN));
  });
  for (int reader = 0; reader < 2; ++reader) {
    try {
      State into(cfg_, 1, 0);
      if (reader == 0) read_adapter_lora_config(path);
      else read_adapter(path, cfg_.model, cfg_.lora, fp_, into.layout, 0, into.params.data());
      ADD_FAILURE() << "reader " << reader << " accepted a NaN scale";
    } catch (const CheckpointError& e) {
      EXPECT_EQ(e.kind, CheckpointError::Invalid) << e.what();
      EXPECT_TRUE(contains(e.what(), path + ": /adapter: attribute 'scale' = nan is not a finite number")) << e.what();
    }
  }
}

// A sealed file whose tensor declares a shape far beyond any allocation: refused by comparing
// with the layout, before anything is allocated or read.
TEST_F(CheckpointTest, HugeDeclaredShapeIsRefusedBeforeAllocating) {
  const std::string path = save(2);
  edit_h5(path, [](hid_t file) {
    H5Ldelete(file, "/optimizer/m/h.0.lora.q.A", H5P_DEFAULT);
    const hsize_t dims[2] = {hsize_t(1) << 33, hsize_t(1) << 31}, chunk[2] = {1, 1};
    H5Handle space(H5Screate_simple(2, dims, nullptr), H5Sclose);
    H5Handle dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
    H5Pset_chunk(dcpl, 2, chunk);
    H5Handle ds(H5Dcreate2(file, "/optimizer/m/h.0.lora.q.A", H5T_IEEE_F32LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT),
                H5Dclose);
    ASSERT_TRUE(ds.valid());
  });
  const CheckpointError e = refusal(path, cfg_);
  EXPECT_EQ(e.kind, CheckpointError::Mismatch);
  EXPECT_TRUE(contains(e.what(), path + ": dataset /optimizer/m/h.0.lora.q.A has shape [8589934592, 2147483648], "
                                        "this run needs [2, 16]"))
      << e.what();
}

TEST_F(CheckpointTest, IntegerTensorIsRefused) {
  const std::string path = save(2);
  edit_h5(path, [](hid_t file) {
    H5Ldelete(file, "/adapter/h.0.lora.k.B", H5P_DEFAULT);
    const hsize_t dims[2] = {16, 2};
    H5Handle space(H5Screate_simple(2, dims, nullptr), H5Sclose);
    std::vector<int32_t> zeros(32);
    H5Handle ds(H5Dcreate2(file, "/adapter/h.0.lora.k.B", H5T_STD_I32LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                H5Dclose);
    H5Dwrite(ds, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, zeros.data());
  });
  const CheckpointError e = refusal(path, cfg_);
  EXPECT_EQ(e.kind, CheckpointError::Invalid);
  EXPECT_TRUE(contains(e.what(), path + ": dataset /adapter/h.0.lora.k.B is not float32")) << e.what();
}

TEST_F(CheckpointTest, FlippedBitInATensorFailsTheSealChecksum) {
  for (const char* name : {"/adapter/h.1.lora.v.B", "/optimizer/v/h.0.lora.q.A"}) {
    const std::string path = save(4);
    flip_bit(path, dataset_offset(path, name) + 5, 3);
    const CheckpointError e = refusal(path, cfg_);
    EXPECT_EQ(e.kind, CheckpointError::Corrupt);
    EXPECT_TRUE(contains(e.what(), path + ": checksum mismatch: stored 0x")) << name << ": " << e.what();
  }
}

// The seal covers every byte, the counters too: a step changed after the fact is caught.
TEST_F(CheckpointTest, ChangedStepAttributeFailsTheSeal) {
  const std::string path = save(4);
  {
    H5Handle file(H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT), H5Fclose);
    H5Handle state(H5Gopen2(file, "/state", H5P_DEFAULT), H5Gclose);
    H5Adelete(state, "step");
    h5_write_attr(state, "step", 5);
  }
  const CheckpointError e = refusal(path, cfg_);
  EXPECT_EQ(e.kind, CheckpointError::Corrupt);
  EXPECT_TRUE(contains(e.what(), "checksum mismatch") || contains(e.what(), "truncated or extended")) << e.what();
}

TEST_F(CheckpointTest, CheckpointErrorIsAnInputError) {
  const std::string path = save(1);
  fs::resize_file(path, 10);
  EXPECT_THROW(verify_checkpoint(path, checkpoint_run(cfg_), fp_), InputError);  // main maps InputError to exit status 3
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
  other.model.dtype = "bf16";
  const CheckpointInfo info = verify_checkpoint(path, checkpoint_run(other), fp_);
  ASSERT_EQ(info.notes.size(), 3u);
  EXPECT_TRUE(contains(info.notes[0], "train.steps 20 in the checkpoint, 40 in this run")) << info.notes[0];
  EXPECT_TRUE(contains(info.notes[1], "optim.lr")) << info.notes[1];
  EXPECT_TRUE(contains(info.notes[2], "model.dtype fp32 in the checkpoint, bf16 in this run")) << info.notes[2];
}

TEST_F(CheckpointTest, ResumeModesNoneAndPath) {
  const std::string path = save(6);
  std::ostringstream log;
  cfg_.checkpoint.resume = "none";
  EXPECT_FALSE(select_checkpoint(checkpoint_run(cfg_), fp_, log));
  cfg_.checkpoint.resume = path;
  EXPECT_EQ(select_checkpoint(checkpoint_run(cfg_), fp_, log)->counters.step, 6);
  fs::resize_file(path, 100);
  EXPECT_THROW(select_checkpoint(checkpoint_run(cfg_), fp_, log), CheckpointError);  // a named file is that file or nothing
}

TEST_F(CheckpointTest, AutoTakesTheNewestGoodAndReportsTheBadOnes) {
  save(1);
  save(2);
  const std::string truncated = save(3), flipped = save(4), unsealed = save(5);
  fs::resize_file(truncated, fs::file_size(truncated) - 200);
  flip_bit(flipped, kSealBytes + 300, 2);  // in the HDF5 metadata right after the superblock
  std::fstream(unsealed, std::ios::in | std::ios::out | std::ios::binary).write("\0", 1);
  std::ofstream(truncated + ".tmp") << "a killed writer's leftovers";  // never a candidate
  cfg_.checkpoint.resume = "auto";
  std::ostringstream log;
  const auto info = select_checkpoint(checkpoint_run(cfg_), fp_, log);
  ASSERT_TRUE(info);
  EXPECT_EQ(info->counters.step, 2);
  EXPECT_EQ(info->path, checkpoint_path(cfg_.output.dir, 2));
  for (const std::string& bad : {truncated, flipped, unsealed})
    EXPECT_TRUE(contains(log.str(), "lora_dist: warning: skipping checkpoint " + bad + ": ")) << log.str();
  EXPECT_TRUE(contains(log.str(), unsealed + ": no lora_dist seal")) << log.str();
}

TEST_F(CheckpointTest, AutoRefusesAMismatchInsteadOfSkippingIt) {
  save(1);
  cfg_.checkpoint.resume = "auto";
  cfg_.lora.r = 8;
  std::ostringstream log;
  try {
    select_checkpoint(checkpoint_run(cfg_), fp_, log);
    FAIL() << "accepted a checkpoint of another LoRA rank";
  } catch (const CheckpointError& e) {
    EXPECT_EQ(e.kind, CheckpointError::Mismatch);
  }
}

TEST_F(CheckpointTest, AutoWithNothingToResumeStartsFresh) {
  cfg_.checkpoint.resume = "auto";
  std::ostringstream log;
  EXPECT_FALSE(select_checkpoint(checkpoint_run(cfg_), fp_, log));
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
  const uint64_t bytes = save_adapter(comm_, cfg_.model, cfg_.lora, fp_, s.slices(), path);
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
