// HF safetensors base weights (model.init: hf): the reader checks every length, offset,
// dtype and shape of a file it did not write before touching a tensor byte; a GPT-2 folder
// (one file or sharded, with or without the "transformer." prefix, F32/F16/BF16) is read by
// every TP rank as exactly its slice of the [out, in] layout, the Conv1D weights transposed;
// a rank reads only its shard's bytes; bad folders are InputErrors naming file and tensor.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "io/hf_base_weights.h"
#include "io/hf_config.h"
#include "io/hf_model_folder.h"
#include "io/input_error.h"
#include "io/safetensors_file.h"
#include "model/tensor_shards.h"
#include "tests/model_shape.h"
#include "trainer/config/config_loader.h"
#include "trainer/machine/runtime_baseline.h"
#include "unique_temp_path.h"

namespace lora {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

fs::path fresh_dir(const std::string& name) {
  const fs::path d = test::unique_temp_path("hf_" + name);
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

// One tensor to write: raw bytes of `dtype`, and the header entry (which tests may damage).
struct StTensor {
  std::string dtype;
  std::vector<uint64_t> shape;
  std::vector<unsigned char> bytes;
};

// A safetensors file as the format says; `edit` may change the header before it is written.
void write_st(const fs::path& path, const std::map<std::string, StTensor>& tensors,
              const std::function<void(json&)>& edit = nullptr, const std::string& raw_header = "") {
  json h = json::object();
  std::vector<unsigned char> data;
  for (const auto& [name, t] : tensors) {
    h[name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {data.size(), data.size() + t.bytes.size()}}};
    data.insert(data.end(), t.bytes.begin(), t.bytes.end());
  }
  h["__metadata__"] = {{"format", "pt"}};
  if (edit) edit(h);
  std::string text = raw_header.empty() ? h.dump() : raw_header;
  while (text.size() % 8) text += ' ';
  std::ofstream out(path, std::ios::binary);
  const uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) out.put(static_cast<char>((n >> (8 * i)) & 0xff));
  out << text;
  out.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
}

uint16_t to_f16(float f) {  // exact for the values used here (k/8, small)
  if (f == 0) return 0;
  uint32_t u;
  std::memcpy(&u, &f, 4);
  const uint32_t sign = (u >> 16) & 0x8000u;
  const int exp = int((u >> 23) & 0xff) - 127 + 15;
  return static_cast<uint16_t>(sign | (uint32_t(exp) << 10) | ((u >> 13) & 0x3ffu));
}

StTensor make(const std::string& dtype, std::vector<uint64_t> shape, const std::vector<float>& v) {
  StTensor t{dtype, std::move(shape), {}};
  for (float f : v) {
    if (dtype == "F32") {
      unsigned char b[4];
      std::memcpy(b, &f, 4);
      t.bytes.insert(t.bytes.end(), b, b + 4);
    } else {
      const uint16_t h = dtype == "F16" ? to_f16(f) : float_to_bf16(f);
      t.bytes.push_back(static_cast<unsigned char>(h & 0xff));
      t.bytes.push_back(static_cast<unsigned char>(h >> 8));
    }
  }
  return t;
}

// Logical value of element (o, i) of lora_dist tensor `name` ([out, in]): k/8, exact in
// F16 and BF16, different for every tensor and element.
float value(const std::string& name, uint64_t o, uint64_t i) {
  const uint64_t k = std::hash<std::string>()(name) % 89 + 7 * o + 3 * i;
  return static_cast<float>(static_cast<int>(k % 101) - 50) / 8.0f;
}

ModelConfig small() { return test::model_shape(2, 4, 8, 13, 5); }  // V=13 is padded to 16 at tp=4

// HF GPT-2's name for a lora_dist tensor and whether it is a Conv1D weight stored [in, out],
// written out here rather than taken from the library, so that the test checks its mapping.
std::string hf_name(const std::string& ours, bool* conv1d) {
  static const std::pair<std::string, std::string> kParts[] = {
      {"attn.qkv.", "attn.c_attn."}, {"attn.proj.", "attn.c_proj."}, {"mlp.fc.", "mlp.c_fc."}, {"mlp.proj.", "mlp.c_proj."}};
  *conv1d = false;
  if (ours == "wte" || ours == "wpe") return ours + ".weight";
  for (const auto& [a, b] : kParts)
    if (ours.find(a) != std::string::npos) {
      *conv1d = ours.substr(ours.size() - 6) == "weight";
      return ours.substr(0, ours.find(a)) + b + ours.substr(ours.find(a) + a.size());
    }
  return ours;
}

// The model of small() as an HF GPT-2 folder: Conv1D weights [in, out], vectors [n].
std::map<std::string, StTensor> gpt2_tensors(const ModelConfig& m, const std::string& dtype, const std::string& prefix) {
  std::map<std::string, StTensor> out;
  for (const TensorSpec& s : base_layout(m, 1).tensors) {
    bool transposed = false;
    const std::string hf = hf_name(s.name, &transposed);
    std::vector<float> v;
    const bool vec = s.rows == 1 || s.cols == 1;
    if (transposed)
      for (int i = 0; i < s.cols; ++i)
        for (int o = 0; o < s.rows; ++o) v.push_back(value(s.name, o, i));
    else
      for (int o = 0; o < s.rows; ++o)
        for (int i = 0; i < s.cols; ++i) v.push_back(value(s.name, o, i));
    const std::vector<uint64_t> shape =
        vec ? std::vector<uint64_t>{uint64_t(s.rows) * s.cols}
            : transposed ? std::vector<uint64_t>{uint64_t(s.cols), uint64_t(s.rows)}
                         : std::vector<uint64_t>{uint64_t(s.rows), uint64_t(s.cols)};
    out[prefix + hf] = make(dtype, shape, v);
  }
  // The old buffers GPT-2 checkpoints carry: ignored.
  out[prefix + "h.0.attn.bias"] = make("F32", {1, 1, 5, 5}, std::vector<float>(25, 1.0f));
  out[prefix + "h.0.attn.masked_bias"] = make("F32", {}, {-1e4f});
  return out;
}

void write_config(const fs::path& dir, const ModelConfig& m, const std::function<void(json&)>& edit = nullptr) {
  json c = {{"model_type", "gpt2"}, {"activation_function", "gelu_new"}, {"n_layer", m.n_layer},
            {"n_head", m.n_head},   {"n_embd", m.d_model},                {"vocab_size", m.vocab_size},
            {"n_positions", m.context}, {"n_ctx", m.context},             {"layer_norm_epsilon", 1e-5},
            {"n_inner", nullptr}};
  if (edit) edit(c);
  std::ofstream(dir / "config.json") << c.dump(2);
}

fs::path gpt2_folder(const std::string& name, const std::string& dtype = "F32", const std::string& prefix = "") {
  const fs::path d = fresh_dir(name);
  write_config(d, small());
  write_st(d / "model.safetensors", gpt2_tensors(small(), dtype, prefix));
  return d;
}

// The InputError `f` throws (the test fails if it throws none or another type).
std::string input_error(const std::function<void()>& f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no InputError";
  return "";
}

std::string read_error(const fs::path& dir, const ModelConfig& m = small()) {
  const ParamLayout layout = base_layout(m, 1);
  std::vector<float> buf(layout.total);
  return input_error([&] { read_hf_base_weights(dir.string(), layout, 0, buf.data(), nullptr, m.arch); });
}

// The full model in lora_dist's layout, from value().
std::vector<float> expected_full(const ParamLayout& layout) {
  std::vector<float> full(layout.total);
  for (const TensorSpec& s : layout.tensors)
    for (int o = 0; o < s.rows; ++o)
      for (int i = 0; i < s.cols; ++i) full[s.offset + size_t(o) * s.cols + i] = value(s.name, o, i);
  return full;
}

TEST(HfWeights, EveryRankReadsItsSliceTransposedAndOnlyItsBytes) {
  for (const std::string dtype : {"F32", "F16", "BF16"}) {
    const fs::path dir = gpt2_folder("slices_" + dtype, dtype, "transformer.");
    const ParamLayout full_layout = base_layout(small(), 1);
    const std::vector<float> full = expected_full(full_layout);
    uint64_t bytes_tp1 = 0;
    for (int tp : {1, 2, 4}) {
      const ParamLayout layout = base_layout(small(), tp);
      uint64_t largest = 0;
      for (int rank = 0; rank < tp; ++rank) {
        std::vector<float> buf(layout.total, -99.0f), want(layout.total);
        const HfReadStats st = read_hf_base_weights(dir.string(), layout, rank, buf.data());
        uint64_t rank_bytes = 0;  // the rank's slice of every tensor, padding rows excluded
        for (const TensorSpec& s : layout.tensors) {
          const TensorSpec& f = full_layout.at(s.name);
          slice_of_full_tensor(s, full.data() + f.offset, rank, want.data() + s.offset);
          uint64_t real_rows = 0;
          for (int lr = 0; lr < s.local_rows; ++lr) real_rows += s.global_row(lr, rank) < s.rows;
          rank_bytes += real_rows * s.local_cols * (dtype == "F32" ? 4 : 2);
        }
        ASSERT_EQ(buf, want) << dtype << " tp " << tp << " rank " << rank;
        EXPECT_EQ(st.dtypes, dtype);
        EXPECT_EQ(st.bytes_read, rank_bytes) << dtype << " tp " << tp << " rank " << rank;
        if (tp == 1) bytes_tp1 = st.bytes_read;
        largest = std::max(largest, st.bytes_read);
      }
      // The matrices are sharded: at tp 4 no rank reads even half of what tp 1 reads.
      if (tp == 4) {
        EXPECT_LT(largest, bytes_tp1 / 2);
      }
    }
  }
}

TEST(HfWeights, Bf16LayoutGetsRoundedMatricesAndShardedFolderReadsTheSame) {
  ModelConfig m = small();
  m.dtype = "bf16";
  const fs::path dir = fresh_dir("sharded");
  write_config(dir, m);
  auto all = gpt2_tensors(m, "F32", "");
  std::map<std::string, StTensor> a, b;
  json index = {{"metadata", {{"total_size", 0}}}, {"weight_map", json::object()}};
  for (auto& [name, t] : all) {
    const bool first = name.rfind("h.1.", 0) != 0;
    (first ? a : b)[name] = t;
    index["weight_map"][name] = first ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
  }
  write_st(dir / "model-00001-of-00002.safetensors", a);
  write_st(dir / "model-00002-of-00002.safetensors", b);
  std::ofstream(dir / "model.safetensors.index.json") << index.dump();
  const ParamLayout layout = base_layout(m, 2), fl = base_layout(small(), 1);
  const std::vector<float> full = expected_full(fl);
  std::vector<float> buf(layout.total), want(layout.total_bf16 + layout.total);
  std::vector<uint16_t> bf(layout.total_bf16);
  read_hf_base_weights(dir.string(), layout, 1, buf.data(), bf.data());
  for (const TensorSpec& s : layout.tensors) {
    std::vector<float> local(s.local_size());
    slice_of_full_tensor(s, full.data() + fl.at(s.name).offset, 1, local.data());
    for (size_t i = 0; i < local.size(); ++i) {
      const float got = s.dtype == DType::BF16 ? bf16_to_float(bf[s.offset + i]) : buf[s.offset + i];
      ASSERT_EQ(got, s.dtype == DType::BF16 ? round_to_bf16(local[i]) : local[i]) << s.name << " " << i;
    }
  }
}

TEST(HfWeights, TiedLmHeadIsAcceptedAnUntiedOneRefused) {
  const fs::path dir = fresh_dir("lm_head");
  write_config(dir, small());
  auto t = gpt2_tensors(small(), "F32", "transformer.");
  t["lm_head.weight"] = t["transformer.wte.weight"];
  write_st(dir / "model.safetensors", t);
  const ParamLayout layout = base_layout(small(), 1);
  std::vector<float> buf(layout.total);
  EXPECT_NO_THROW(read_hf_base_weights(dir.string(), layout, 0, buf.data()));
  t["lm_head.weight"].bytes[4 * (8 * 3 + 2)] ^= 0x40;  // row 3, column 2
  write_st(dir / "model.safetensors", t);
  const std::string e = read_error(dir);
  EXPECT_TRUE(contains(e, "lm_head.weight") && contains(e, "row 3, column 2")) << e;
}

// Each malformed file: an InputError naming the file and, where there is one, the tensor.
TEST(HfWeights, MalformedFilesAreRefusedNamingFileAndTensor) {
  const std::string victim = "h.0.attn.c_proj.weight";
  using Tensors = std::map<std::string, StTensor>;
  struct Case {
    std::string name;
    std::function<void(Tensors&)> tensors;  // damage to the tensors (before the header is made)
    std::function<void(json&)> header;      // damage to the header
    std::string raw_header;                 // written instead of the JSON when set
    std::vector<std::string> names;
  };
  const std::vector<Case> cases = {
      {"header_not_json", nullptr, nullptr, "{\"wte.weight\": {\"dtype\": \"F32\",", {"not valid JSON"}},
      {"header_not_object", nullptr, nullptr, "[1, 2, 3]", {"not a JSON object"}},
      {"unknown_dtype", nullptr, [&](json& h) { h[victim]["dtype"] = "F24"; }, "", {victim, "unknown dtype"}},
      {"negative_dim", nullptr, [&](json& h) { h[victim]["shape"][0] = -8; }, "", {victim, "non-negative"}},
      {"shape_times_dtype", nullptr, [&](json& h) { h[victim]["shape"] = {8, 9}; }, "", {victim, "288 bytes", "256"}},
      {"huge_shape", nullptr, [&](json& h) { h[victim]["shape"] = {1ull << 40, 1ull << 40}; }, "", {victim, "2^64"}},
      {"offsets_past_end", nullptr, [&](json& h) { h[victim]["data_offsets"] = {1ull << 50, (1ull << 50) + 256}; }, "",
       {victim, "run past the data"}},
      {"offsets_reversed", nullptr,
       [&](json& h) {
         const json o = h[victim]["data_offsets"];
         h[victim]["data_offsets"] = {o[1], o[0]};
       },
       "", {victim, "end before"}},
      {"overlap", nullptr,
       [&](json& h) {
         h[victim]["data_offsets"] = h["h.0.attn.c_attn.weight"]["data_offsets"];
         h[victim]["shape"] = h["h.0.attn.c_attn.weight"]["shape"];
       },
       "", {"overlaps", "h.0.attn.c_attn.weight", victim}},
      {"offsets_not_pair", nullptr, [&](json& h) { h[victim]["data_offsets"] = {0}; }, "", {victim, "[begin, end]"}},
      {"entry_not_object", nullptr, [&](json& h) { h[victim] = 5; }, "", {victim}},
      {"no_dtype", nullptr, [&](json& h) { h[victim].erase("dtype"); }, "", {victim, "dtype"}},
      {"int_dtype", nullptr, [&](json& h) { h[victim]["dtype"] = "I32"; }, "", {victim, "I32"}},
      {"wrong_shape_for_config", nullptr, [&](json& h) { h[victim]["shape"] = {4, 16}; }, "",
       {victim, "[8, 8]", "config.json"}},
      {"missing_tensor", [](Tensors& t) { t.erase("h.1.ln_2.bias"); }, nullptr, "", {"h.1.ln_2.bias", "no tensor"}},
      {"extra_layer", [](Tensors& t) { t["h.2.ln_1.weight"] = t["h.1.ln_1.weight"]; }, nullptr, "",
       {"h.2.ln_1.weight", "n_layer = 2"}},
      {"nan",
       [&](Tensors& t) {
         const float nan = std::nanf("");
         std::memcpy(t[victim].bytes.data() + 12, &nan, 4);
       },
       nullptr, "", {victim, "non-finite", "element 3"}},
  };
  for (const Case& c : cases) {
    const fs::path dir = fresh_dir("bad_" + c.name);
    write_config(dir, small());
    Tensors tensors = gpt2_tensors(small(), "F32", "");
    if (c.tensors) c.tensors(tensors);
    write_st(dir / "model.safetensors", tensors, c.header, c.raw_header);
    const std::string e = read_error(dir);
    EXPECT_TRUE(contains(e, (dir / "model.safetensors").string())) << c.name << ": " << e;
    for (const std::string& n : c.names) EXPECT_TRUE(contains(e, n)) << c.name << ": '" << n << "' not in: " << e;
  }
}

TEST(HfWeights, HeaderLengthAndTruncationAreCheckedBeforeUse) {
  const fs::path dir = gpt2_folder("truncated");
  const fs::path f = dir / "model.safetensors";
  const uintmax_t size = fs::file_size(f);
  fs::resize_file(f, size - 3);  // the last tensor's bytes run past the end
  std::string e = read_error(dir);
  EXPECT_TRUE(contains(e, "run past the data section") && contains(e, f.string())) << e;
  fs::resize_file(f, 100);  // the header itself is cut
  e = read_error(dir);
  EXPECT_TRUE(contains(e, "runs past the end of the file") && contains(e, f.string())) << e;
  fs::resize_file(f, 5);
  EXPECT_TRUE(contains(read_error(dir), "too short")) << read_error(dir);
  std::ofstream(f, std::ios::binary).write("\xff\xff\xff\xff\xff\xff\xff\xff{}", 10);  // 2^64 - 1
  EXPECT_TRUE(contains(read_error(dir), "runs past the end of the file"));
}

TEST(HfWeights, DuplicateAndPrefixClashesAreRefused) {
  const fs::path dir = fresh_dir("dup");
  write_config(dir, small());
  auto t = gpt2_tensors(small(), "F32", "");
  std::string header = "";
  write_st(dir / "model.safetensors", t, [&](json& h) { header = h.dump(); });
  // The same name twice in the header text (a JSON parser would keep one silently).
  const std::string entry = "\"wpe.weight\":", dup = header.substr(header.find(entry));
  header = "{" + dup.substr(0, dup.find('}') + 1) + "," + header.substr(1);
  write_st(dir / "model.safetensors", t, nullptr, header);
  std::string e = read_error(dir);
  EXPECT_TRUE(contains(e, "'wpe.weight' appears twice")) << e;
  t["transformer.wpe.weight"] = t["wpe.weight"];
  write_st(dir / "model.safetensors", t);
  e = read_error(dir);
  EXPECT_TRUE(contains(e, "transformer.wpe.weight") && contains(e, "prefix")) << e;
}

TEST(HfWeights, IndexIsValidated) {
  const fs::path dir = fresh_dir("index");
  write_config(dir, small());
  write_st(dir / "a.safetensors", gpt2_tensors(small(), "F32", ""));
  auto index = [&](const json& map) { std::ofstream(dir / "model.safetensors.index.json") << json{{"weight_map", map}}.dump(); };
  index({{"wte.weight", "../a.safetensors"}});
  EXPECT_TRUE(contains(read_error(dir), "expected the name of a file in the folder"));
  index({{"wte.weight", "b.safetensors"}});
  EXPECT_TRUE(contains(read_error(dir), "b.safetensors, which is not in the folder"));
  index({{"wte.weight", "a.safetensors"}, {"lm_head.bias", "a.safetensors"}});
  std::string e = read_error(dir);
  EXPECT_TRUE(contains(e, "no tensor 'lm_head.bias'") && contains(e, "a.safetensors")) << e;
  index({{"wte.weight", "a.safetensors"}});  // the rest is not listed: missing
  EXPECT_TRUE(contains(read_error(dir), "no tensor 'wpe.weight'"));
  std::ofstream(dir / "model.safetensors.index.json") << "{\"weight_map\": [";
  EXPECT_TRUE(contains(read_error(dir), "not valid JSON"));
  fs::remove(dir / "model.safetensors.index.json");
  EXPECT_TRUE(contains(read_error(dir), "neither model.safetensors nor"));
}

TEST(HfConfig, ShapeFromConfigJsonAndRefusedKeys) {
  const fs::path dir = fresh_dir("config");
  write_config(dir, small());
  const HfGpt2Shape s = read_hf_gpt2_config(dir.string());
  EXPECT_EQ(s.n_layer, 2);
  EXPECT_EQ(s.n_embd, 8);
  EXPECT_EQ(s.vocab_size, 13);
  EXPECT_EQ(s.n_positions, 5);
  const std::vector<std::pair<std::function<void(json&)>, std::string>> bad = {
      {[](json& c) { c.erase("n_head"); }, "no 'n_head'"},
      {[](json& c) { c["n_embd"] = 8.5; }, "n_embd must be a positive"},
      {[](json& c) { c["n_layer"] = 0; }, "n_layer must be a positive"},
      {[](json& c) { c["n_head"] = 3; }, "not divisible by n_head"},
      {[](json& c) { c["activation_function"] = "relu"; }, "activation_function"},
      {[](json& c) { c["n_inner"] = 20; }, "n_inner"},
      {[](json& c) { c["model_type"] = "llama"; }, "model_type"},
      {[](json& c) { c["scale_attn_by_inverse_layer_idx"] = true; }, "scale_attn_by_inverse_layer_idx"},
      {[](json& c) { c["tie_word_embeddings"] = false; }, "tie_word_embeddings"},
      {[](json& c) { c["layer_norm_epsilon"] = "small"; }, "layer_norm_epsilon"},
  };
  for (const auto& [edit, what] : bad) {
    write_config(dir, small(), edit);
    const std::string e = input_error([&] { read_hf_gpt2_config(dir.string()); });
    EXPECT_TRUE(contains(e, (dir / "config.json").string()) && contains(e, what)) << what << ": " << e;
  }
  std::ofstream(dir / "config.json") << "{\"n_layer\": ";
  EXPECT_TRUE(contains(input_error([&] { read_hf_gpt2_config(dir.string()); }), "not valid JSON"));
}

TEST(HfConfig, LoaderTakesTheShapeAndRefusesADisagreeingYamlKey) {
  const fs::path dir = gpt2_folder("loader");
  std::ofstream(dir / "t.bin") << "x";
  auto yaml = [&](const std::string& model, const std::string& path = ".") {
    std::ofstream(dir / "run.yaml") << "model: {init: hf, path: " << path << "," << model << "}\n"
                                    << "data: {train: t.bin}\ntrain: {seq_len: 4, batch_size: 1, micro_batch: 1}\n";
    return (dir / "run.yaml").string();
  };
  const RunConfig c = load_run_config(yaml(" d_model: 8"));  // agrees: fine
  EXPECT_EQ(c.model.n_layer, 2);
  EXPECT_EQ(c.model.vocab_size, 13);
  EXPECT_EQ(c.model.context, 5);
  EXPECT_TRUE(fs::equivalent(c.model.path, dir)) << c.model.path;
  try {
    load_run_config(yaml(" n_layer: 12"));
    ADD_FAILURE() << "no ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_TRUE(contains(e.what(), "model.n_layer") && contains(e.what(), "config.json") && contains(e.what(), "is 2"))
        << e.what();
  }
  EXPECT_THROW(load_run_config(yaml("", "nowhere")), ConfigError);
  EXPECT_THROW(load_run_config(yaml(" seed: 1", ".")), ConfigError);  // a typo is still a typo
}

uint64_t file_resident_bytes() {  // the mapped file pages of this process
  return proc_status_bytes("RssFile:") + proc_status_bytes("RssShmem:");
}

// A rank copies its slice of a tensor, then release() drops the file's pages from its
// resident set: loading a base peaks at one tensor's pages, not the rank's share of the file.
// The bytes are still there when touched again.
// A Llama-family folder with one thing wrong: the reader names the file and the tensor. (Its
// values and slices are checked against PyTorch at tp 1, 2, 4 by llama.torch_reference.)
ModelConfig small_llama() {
  ModelConfig m = small();
  m.arch = "llama";
  m.n_kv_head = 2;
  m.head_dim = 4;
  m.ffn = 12;
  m.tie_embeddings = false;
  return m;
}

std::map<std::string, StTensor> llama_tensors(const ModelConfig& m) {
  std::map<std::string, StTensor> out;
  for (const TensorSpec& s : base_layout(m, 1).tensors) {
    const HfSource src = hf_source(s.name, "llama");
    for (size_t b = 0; b < src.names.size(); ++b) {
      const int rows = src.names.size() > 1 ? s.blocks[b] : s.rows;
      const bool vec = rows == 1 || s.cols == 1;
      out[src.names[b]] = make("F32", vec ? std::vector<uint64_t>{uint64_t(rows) * s.cols}
                                          : std::vector<uint64_t>{uint64_t(rows), uint64_t(s.cols)},
                               std::vector<float>(size_t(rows) * s.cols, 0.5f));
    }
  }
  return out;
}

TEST(HfWeights, LlamaFolderProblemsNameTheTensor) {
  const ModelConfig m = small_llama();
  const fs::path ok = fresh_dir("llama_ok");
  write_st(ok / "model.safetensors", llama_tensors(m));
  {
    const ParamLayout layout = base_layout(m, 1);
    std::vector<float> buf(layout.total);
    EXPECT_NO_THROW(read_hf_base_weights(ok.string(), layout, 0, buf.data(), nullptr, "llama"));
  }

  auto without = llama_tensors(m);
  without.erase("model.layers.1.self_attn.k_proj.weight");
  const fs::path missing = fresh_dir("llama_missing");
  write_st(missing / "model.safetensors", without);
  const std::string e1 = read_error(missing, m);
  EXPECT_TRUE(contains(e1, "no tensor 'model.layers.1.self_attn.k_proj.weight' of shape [8, 8]")) << e1;

  auto wrong = llama_tensors(m);
  wrong["model.layers.0.mlp.up_proj.weight"] = make("F32", {8, 12}, std::vector<float>(96, 0.5f));  // transposed
  const fs::path shape = fresh_dir("llama_shape");
  write_st(shape / "model.safetensors", wrong);
  const std::string e2 = read_error(shape, m);
  EXPECT_TRUE(contains(e2, "tensor 'model.layers.0.mlp.up_proj.weight' has shape [8, 12], but config.json's model "
                           "needs [12, 8]")) << e2;

  auto untied = llama_tensors(m);
  untied.erase("lm_head.weight");
  const fs::path head = fresh_dir("llama_no_head");
  write_st(head / "model.safetensors", untied);
  const std::string e3 = read_error(head, m);
  EXPECT_TRUE(contains(e3, "no tensor 'lm_head.weight'")) << e3;
}

TEST(HfWeights, ReleasedTensorPagesLeaveTheResidentSetAndReadBackTheSame) {
  const fs::path dir = fresh_dir("release");
  const size_t n = size_t(64) << 20 >> 2;  // 64 MiB of F32
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = float(i % 1000) * 0.5f;
  write_st(dir / "big.safetensors", {{"w", make("F32", {n}, v)}});
  const SafetensorsFile f((dir / "big.safetensors").string());
  const SafetensorsTensor& t = *f.find("w");
  auto sum_every_page = [&] {  // touches each 4 KiB page once
    double s = 0;
    for (uint64_t k = 0; k < t.elements(); k += 1024) s += st_element(t, k);
    return s;
  };
  const uint64_t before = file_resident_bytes();
  const double first = sum_every_page();
  const uint64_t touched = file_resident_bytes();
  f.release(t);
  const uint64_t released = file_resident_bytes();
  EXPECT_GT(touched, before + (uint64_t(56) << 20)) << "touching 64 MiB of a mapped file should add it to RssFile";
  EXPECT_LT(released, touched - (uint64_t(56) << 20)) << "release() left the pages resident";
  EXPECT_EQ(sum_every_page(), first);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace lora
