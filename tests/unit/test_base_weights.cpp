// Base weights in HDF5: a file written from the full model is read back by every TP rank
// as exactly its slice (padding rows zero); foreign files as other tools write them (1-D
// biases, float64, float16, bfloat16) are read; bad ones (missing, mis-shaped, huge
// declared shape, integer, NaN, damaged metadata) are refused with an InputError naming the
// file and tensor, never a crash: libhdf5's parse runs first in a probe process.
#include <gtest/gtest.h>
#include <hdf5.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <thread>

#include "io/base_weights.h"
#include "io/file_seal.h"
#include "io/h5_probe.h"
#include "io/hdf5_util.h"
#include "io/input_error.h"
#include "model/rng.h"
#include "model/tensor_shards.h"
#include "tests/model_shape.h"
#include "unique_temp_path.h"

namespace lora {
namespace {

namespace fs = std::filesystem;

ModelConfig small() { return test::model_shape(2, 4, 8, 13, 5); }  // V=13 is padded to 16 at tp=4

std::string temp_file(const char* name) { return test::unique_temp_path(name).string(); }

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// Values exactly representable in float16 and bfloat16 (k/8, |k| < 64), different per element.
std::vector<float> exact_values(size_t n) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<float>(static_cast<int>(i % 97) - 48) / 8.0f;
  return v;
}

// A file as h5py or a converter writes it: no user block, no seal. `file_type(spec)` gives
// each dataset's type in the file, `vector_1d` writes [1, n] / [n, 1] tensors as [n].
void write_foreign(const std::string& path, const ParamLayout& layout, const std::vector<float>& values,
                   const std::function<hid_t(const TensorSpec&)>& file_type, bool vector_1d) {
  H5Handle file(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose);
  ASSERT_TRUE(file.valid());
  for (const TensorSpec& s : layout.tensors) {
    const bool vec = vector_1d && (s.rows == 1 || s.cols == 1);
    const hsize_t dims[2] = {hsize_t(s.rows), hsize_t(s.cols)}, n[1] = {hsize_t(s.rows) * hsize_t(s.cols)};
    H5Handle space(H5Screate_simple(vec ? 1 : 2, vec ? n : dims, nullptr), H5Sclose);
    H5Handle ds(H5Dcreate2(file, s.name.c_str(), file_type(s), space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Dclose);
    ASSERT_TRUE(ds.valid()) << s.name;
    ASSERT_GE(H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data() + s.offset), 0) << s.name;
  }
}

hid_t f32(const TensorSpec&) { return H5T_IEEE_F32LE; }

// A 2-byte IEEE-style float type: float16 (5 exponent bits) or bfloat16 (8).
H5Handle half_type(int exponent_bits) {
  H5Handle t(H5Tcopy(H5T_IEEE_F32LE), H5Tclose);
  const size_t mant = 15 - exponent_bits;
  H5Tset_fields(t, 15, mant, exponent_bits, 0, mant);
  H5Tset_offset(t, 0);
  H5Tset_precision(t, 16);
  H5Tset_size(t, 2);
  H5Tset_ebias(t, (1u << (exponent_bits - 1)) - 1);
  return t;
}

// The InputError read_base_weights throws for `path` (fails the test if it throws none or another type).
std::string refusal(const std::string& path, const ParamLayout& layout) {
  std::vector<float> buf(layout.total);
  try {
    read_base_weights(path, layout, 0, buf.data());
  } catch (const InputError& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not an InputError: " << e.what();
    return "";
  }
  ADD_FAILURE() << path << " was accepted";
  return "";
}

// Every rank of tp 1, 2 and 4 reads from `path` exactly its slice of the full `values`.
void expect_every_rank_reads_its_slice(const std::string& path, const ModelConfig& m, const std::vector<float>& values) {
  const ParamLayout full = base_layout(m, 1);
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

TEST(BaseWeights, EveryTpRankReadsItsSliceOfTheFullFile) {
  const ModelConfig m = small();
  const ParamLayout full = base_layout(m, 1);
  std::vector<float> values(full.total);
  for (size_t i = 0; i < values.size(); ++i) values[i] = static_cast<float>(uniform_element(4, RngPurpose::BaseInit, 0, i, 1.0));
  const std::string path = temp_file("base_slices.h5");
  write_base_weights(path, full, values.data());
  EXPECT_TRUE(has_seal(path));  // what lora_dist writes it can verify
  expect_every_rank_reads_its_slice(path, m, values);
}

TEST(BaseWeights, MissingOrMisshapedDatasetsAreNamed) {
  const std::string path = temp_file("base_small.h5");
  const ParamLayout layout = base_layout(small(), 1);
  std::vector<float> values(layout.total, 0.5f);
  write_base_weights(path, layout, values.data());
  ModelConfig deeper = small();
  deeper.n_layer = 3;
  EXPECT_TRUE(contains(refusal(path, base_layout(deeper, 1)), path + ": missing dataset 'h.2.ln_1.weight'"));
  ModelConfig wider = small();
  wider.d_model = 12;
  const std::string e = refusal(path, base_layout(wider, 1));
  EXPECT_TRUE(contains(e, "dataset 'wte' has shape [13, 8], the model config needs [13, 12]")) << e;
  EXPECT_TRUE(contains(refusal(temp_file("no_such.h5"), layout), "base weights file not found"));
}

// GPT-2 files store biases and LayerNorm parameters as [n]; the layout has [1, n] or [n, 1]
// (the QKV and fc biases, sharded by rows): both read, on every TP rank.
TEST(BaseWeights, OneDimensionalVectorsAreAccepted) {
  const ParamLayout full = base_layout(small(), 1);
  const std::vector<float> values = exact_values(full.total);
  const std::string path = temp_file("base_1d.h5");
  write_foreign(path, full, values, f32, /*vector_1d=*/true);
  expect_every_rank_reads_its_slice(path, small(), values);
}

// A wrong shape's message shows every dimension of the real one, 1-D and 3-D too.
TEST(BaseWeights, WrongShapeMessageShowsAllDimensions) {
  const ParamLayout layout = base_layout(small(), 1);
  const std::vector<float> values = exact_values(layout.total + 64);
  const std::string path = temp_file("base_bad_shapes.h5");
  write_foreign(path, layout, values, f32, false);
  {
    H5Handle file(H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT), H5Fclose);
    H5Ldelete(file, "h.0.ln_1.bias", H5P_DEFAULT);
    const hsize_t n[1] = {9};
    H5Handle space(H5Screate_simple(1, n, nullptr), H5Sclose);
    H5Handle ds(H5Dcreate2(file, "h.0.ln_1.bias", H5T_IEEE_F32LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Dclose);
  }
  std::string e = refusal(path, layout);
  EXPECT_TRUE(contains(e, path + ": dataset 'h.0.ln_1.bias' has shape [9], the model config needs [1, 8] (or [8])")) << e;
  {
    H5Handle file(H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT), H5Fclose);
    H5Ldelete(file, "h.0.ln_1.bias", H5P_DEFAULT);
    const hsize_t d[3] = {2, 2, 2};
    H5Handle space(H5Screate_simple(3, d, nullptr), H5Sclose);
    H5Handle ds(H5Dcreate2(file, "h.0.ln_1.bias", H5T_IEEE_F32LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Dclose);
  }
  e = refusal(path, layout);
  EXPECT_TRUE(contains(e, "dataset 'h.0.ln_1.bias' has shape [2, 2, 2]")) << e;
}

TEST(BaseWeights, HugeDeclaredShapeIsRefusedBeforeAllocating) {
  const ParamLayout layout = base_layout(small(), 1);
  const std::string path = temp_file("base_huge.h5");
  write_foreign(path, layout, exact_values(layout.total), f32, false);
  {
    H5Handle file(H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT), H5Fclose);
    H5Ldelete(file, "wte", H5P_DEFAULT);
    const hsize_t dims[2] = {hsize_t(1) << 33, hsize_t(1) << 31}, chunk[2] = {1, 1};
    H5Handle space(H5Screate_simple(2, dims, nullptr), H5Sclose);
    H5Handle dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
    H5Pset_chunk(dcpl, 2, chunk);
    H5Handle ds(H5Dcreate2(file, "wte", H5T_IEEE_F32LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT), H5Dclose);
    ASSERT_TRUE(ds.valid());
  }
  const std::string e = refusal(path, layout);
  EXPECT_TRUE(contains(e, "dataset 'wte' has shape [8589934592, 2147483648], the model config needs [13, 8]")) << e;
}

// float64, float16 and bfloat16 are converted to float32 with one note per file naming the
// tensors; the values are the same (they are exactly representable in all of them).
TEST(BaseWeights, WiderAndNarrowerFloatsAreConvertedWithANote) {
  const ParamLayout layout = base_layout(small(), 1);
  const std::vector<float> values = exact_values(layout.total);
  const H5Handle f16 = half_type(5), bf16 = half_type(8);
  const struct {
    const char* name;
    hid_t type;
  } kinds[] = {{"float64", H5T_IEEE_F64LE}, {"float16", f16.get()}, {"bfloat16", bf16.get()}};
  for (const auto& k : kinds) {
    const std::string path = temp_file((std::string("base_") + k.name + ".h5").c_str());
    // wte in the other type, every other tensor float32: the note names exactly wte.
    write_foreign(path, layout, values, [&](const TensorSpec& s) { return s.name == "wte" ? k.type : H5T_IEEE_F32LE; },
                  true);
    std::vector<float> read(layout.total, -1.0f);
    testing::internal::CaptureStderr();
    read_base_weights(path, layout, 0, read.data());
    const std::string err = testing::internal::GetCapturedStderr();
    EXPECT_EQ(read, values) << k.name;
    EXPECT_EQ(err, "lora_dist: note: " + path + ": converted to float32 on reading: " + k.name + ": wte (1 tensor)\n")
        << k.name;
  }
  const std::string all64 = temp_file("base_all_f64.h5");
  write_foreign(all64, layout, values, [](const TensorSpec&) { return H5T_IEEE_F64LE; }, false);
  std::vector<float> read(layout.total);
  testing::internal::CaptureStderr();
  read_base_weights(all64, layout, 0, read.data());
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << "one note per file: " << err;
  EXPECT_TRUE(contains(err, "float64: wte, wpe, ")) << err;
  EXPECT_TRUE(contains(err, "(" + std::to_string(layout.tensors.size()) + " tensors)")) << err;
}

TEST(BaseWeights, IntegerAndOtherTypesAreRefusedNamingTensorAndType) {
  const ParamLayout layout = base_layout(small(), 1);
  const std::vector<float> values = exact_values(layout.total);
  const std::string path = temp_file("base_int.h5");
  write_foreign(path, layout, values,
                [](const TensorSpec& s) { return s.name == "h.1.mlp.fc.weight" ? H5T_STD_I32LE : H5T_IEEE_F32LE; }, false);
  std::string e = refusal(path, layout);
  EXPECT_TRUE(contains(e, path + ": dataset 'h.1.mlp.fc.weight' has type int32; base weights must be floating point"))
      << e;
  write_foreign(path, layout, values, [](const TensorSpec& s) { return s.name == "wpe" ? H5T_STD_U8LE : H5T_IEEE_F32LE; },
                false);
  e = refusal(path, layout);
  EXPECT_TRUE(contains(e, "dataset 'wpe' has type uint8")) << e;
}

TEST(BaseWeights, NonFiniteValueIsRefusedNamingTheTensor) {
  const ParamLayout layout = base_layout(small(), 1);
  for (float bad : {NAN, INFINITY}) {
    std::vector<float> values = exact_values(layout.total);
    values[layout.at("h.1.attn.proj.weight").offset + 5] = bad;
    const std::string path = temp_file("base_nan.h5");
    write_foreign(path, layout, values, f32, false);
    const std::string e = refusal(path, layout);
    EXPECT_TRUE(contains(e, path + ": tensor 'h.1.attn.proj.weight' holds a non-finite value")) << e;
    EXPECT_TRUE(contains(e, "at element 5 of 64")) << e;
  }
  // float64 beyond float32's range becomes an infinity on conversion: refused too.
  std::vector<float> values = exact_values(layout.total);
  const std::string path = temp_file("base_overflow.h5");
  write_foreign(path, layout, values, [](const TensorSpec&) { return H5T_IEEE_F64LE; }, false);
  {
    H5Handle file(H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT), H5Fclose);
    H5Handle ds(H5Dopen2(file, "ln_f.weight", H5P_DEFAULT), H5Dclose);
    std::vector<double> big(8, 1e300);
    H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, big.data());
  }
  testing::internal::CaptureStderr();
  const std::string e = refusal(path, layout);
  testing::internal::GetCapturedStderr();
  EXPECT_TRUE(contains(e, "tensor 'ln_f.weight' holds a non-finite value")) << e;
}

// A file lora_dist wrote (sealed) and then damaged is refused by the seal, before parsing.
TEST(BaseWeights, DamagedSealedFileIsRefusedBeforeParsing) {
  const ParamLayout layout = base_layout(small(), 1);
  const std::string path = temp_file("base_sealed_damaged.h5");
  write_base_weights(path, layout, exact_values(layout.total).data());
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(kSealBytes + 40);
  f.put('\x7f');
  f.close();
  const std::string e = refusal(path, layout);
  EXPECT_TRUE(contains(e, path + ": checksum mismatch")) << e;
}

// One bit flipped at 100 offsets of a foreign file, dense over its metadata (superblock,
// object headers, B-tree and heap) and spread over the rest: every read either succeeds
// with finite values (a flip in tensor bytes that happens to stay finite) or throws an
// InputError naming the file; the process never crashes, whatever libhdf5 does in the probe.
TEST(BaseWeights, FlippedBitsInAForeignFileNeverCrash) {
  const ParamLayout layout = base_layout(small(), 1);
  const std::string good = temp_file("base_foreign_good.h5"), path = temp_file("base_foreign_flipped.h5");
  write_foreign(good, layout, exact_values(layout.total), f32, true);
  const uint64_t size = fs::file_size(good);
  // libhdf5 puts the superblock, root group and dataset object headers before the raw data.
  H5Handle probe(H5Fopen(good.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  H5Handle first(H5Dopen2(probe, "wte", H5P_DEFAULT), H5Dclose);
  const uint64_t metadata_end = std::min<uint64_t>(H5Dget_offset(first), size);
  first.reset();
  probe.reset();
  int refused = 0, accepted = 0, crashed = 0;
  for (int i = 0; i < 100; ++i) {
    const uint64_t offset = i < 80 ? metadata_end * uint64_t(i) / 80 : size * uint64_t(i - 80) / 20;
    fs::copy_file(good, path, fs::copy_options::overwrite_existing);
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(offset));
    const char b = static_cast<char>(f.get() ^ (1 << (i % 8)));
    f.seekp(static_cast<std::streamoff>(offset));
    f.put(b);
    f.close();
    std::vector<float> buf(layout.total);
    try {
      read_base_weights(path, layout, 0, buf.data());
      ++accepted;
    } catch (const InputError& e) {
      ASSERT_TRUE(contains(e.what(), path + ": ")) << "offset " << offset << ": " << e.what();
      ++refused;
      crashed += contains(e.what(), "libhdf5 crashed");
    } catch (const std::exception& e) {
      FAIL() << "offset " << offset << ": not an InputError: " << e.what();
    }
  }
  std::printf("flipped bits in a foreign file: %d refused (%d of them crashed libhdf5 in the probe), %d read "
              "(metadata ends at byte %llu of %llu)\n",
              refused, crashed, accepted, static_cast<unsigned long long>(metadata_end),
              static_cast<unsigned long long>(size));
  EXPECT_GT(refused, 20);  // flips in metadata are mostly noticed
}

// The probe's two ways of reporting: a child killed by a signal, and one that does not
// finish in time. A FIFO makes the child block in open() until the test acts.
// True once `pid` no longer catches SIGSEGV: the probe child has reset the handlers it
// inherited (Open MPI's), so a SIGSEGV now kills it as a libhdf5 crash would. Sent earlier,
// the inherited handler would turn it into an exit status instead (a flake under load).
bool segv_is_default(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind("SigCgt:", 0) == 0) return !(std::stoull(line.substr(7), nullptr, 16) & (1ull << (SIGSEGV - 1)));
  return false;
}

TEST(H5Probe, ChildKilledBySignalOrPastTheTimeoutIsAnInputError) {
  const std::string fifo = temp_file(("probe_fifo_" + std::to_string(getpid())).c_str());
  fs::remove(fifo);
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  try {
    probe_hdf5_file(fifo, {"wte"}, 1.0);
    FAIL() << "a probe blocked in open() returned";
  } catch (const InputError& e) {
    EXPECT_TRUE(contains(e.what(), fifo + ": libhdf5 did not finish parsing this file's metadata within 1 s")) << e.what();
  }

  // SIGSEGV to the child stands for libhdf5 crashing in it. The child is the one running
  // this executable: an MPI singleton has another child, its orted daemon.
  std::atomic<bool> done{false};
  const pid_t self = getpid();
  const fs::path exe = fs::read_symlink("/proc/self/exe");
  std::thread killer([&] {
    while (!done) {
      std::ifstream children("/proc/" + std::to_string(self) + "/task/" + std::to_string(self) + "/children");
      for (pid_t child = 0; children >> child;) {
        std::error_code ec;
        if (fs::read_symlink("/proc/" + std::to_string(child) + "/exe", ec) == exe && segv_is_default(child)) {
          kill(child, SIGSEGV);
          return;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  });
  try {
    probe_hdf5_file(fifo, {"wte"}, 30.0);
    ADD_FAILURE() << "a probe killed by SIGSEGV returned";
  } catch (const InputError& e) {
    EXPECT_TRUE(contains(e.what(), fifo + ": libhdf5 crashed while parsing this file's metadata (corrupted HDF5?)"))
        << e.what();
  }
  done = true;
  killer.join();
  fs::remove(fifo);
}

// The probe while another thread of the process is inside libhdf5 (thread-safe build: it holds
// the library's global mutex in every call). A forked child would inherit that mutex locked at
// the fork and wait in its first HDF5 call until killed at the timeout: the hang seen under
// load. The probe is a fresh process, so every one of many probes finishes.
TEST(H5Probe, FinishesWhileAnotherThreadIsInsideHdf5) {
  const ParamLayout layout = base_layout(small(), 1);
  const std::string path = temp_file("base_probe_busy.h5");
  write_foreign(path, layout, exact_values(layout.total), f32, true);
  std::atomic<bool> stop{false};
  std::atomic<long> calls{0};
  std::thread busy([&] {
    std::vector<float> wte(layout.at("wte").rows * layout.at("wte").cols);
    while (!stop) {
      const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
      const hid_t ds = H5Dopen2(file, "wte", H5P_DEFAULT);
      H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, wte.data());
      H5Dclose(ds);
      H5Fclose(file);
      ++calls;
    }
  });
  int finished = 0;
  for (int i = 0; i < 25; ++i) {
    try {
      probe_hdf5_file(path, {"wte", "h.0.attn.qkv.weight"}, 10.0);
      ++finished;
    } catch (const InputError& e) {
      ADD_FAILURE() << "probe " << i << ": " << e.what();
      break;
    }
  }
  stop = true;
  busy.join();
  EXPECT_EQ(finished, 25);
  EXPECT_GT(calls.load(), 25) << "the other thread was not inside libhdf5 while the probes ran";
}

TEST(H5Probe, SoundFileAndMissingDatasetsPassTheProbe) {
  const ParamLayout layout = base_layout(small(), 1);
  const std::string path = temp_file("base_probe_ok.h5");
  write_foreign(path, layout, exact_values(layout.total), f32, true);
  EXPECT_NO_THROW(probe_hdf5_file(path, {"wte", "no_such_dataset", "h.0.attn.qkv.bias"}));
  std::ofstream(temp_file("not_hdf5.h5")) << "text";
  EXPECT_NO_THROW(probe_hdf5_file(temp_file("not_hdf5.h5"), {"wte"}));  // the real read says what is wrong
}

}  // namespace
}  // namespace lora
