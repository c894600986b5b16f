// run.yaml loading: every tests/configs/bad_*.yaml must fail with the message, file
// and line its header comments name; the example configs and a few hand-written
// ones must load with the right values.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "trainer/config/config_loader.h"

namespace fs = std::filesystem;
using lora::ConfigError;
using lora::load_run_config;
using lora::RunConfig;

namespace {

const fs::path kSource = LORA_SOURCE_DIR;

std::vector<std::string> bad_configs() {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(kSource / "tests" / "configs")) {
    std::string name = e.path().filename().string();
    if (name.rfind("bad_", 0) == 0 && e.path().extension() == ".yaml") out.push_back(name);
  }
  std::sort(out.begin(), out.end());
  return out;
}

// The value of a "# <tag>: value" header line, or "" when absent.
std::string header(const fs::path& file, const std::string& tag) {
  std::ifstream in(file);
  std::string line, prefix = "# " + tag + ": ";
  while (std::getline(in, line) && line.rfind("#", 0) == 0)
    if (line.rfind(prefix, 0) == 0) return line.substr(prefix.size());
  return "";
}

std::string error_of(const std::string& path) {
  try {
    load_run_config(path);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no ConfigError)";
}

class BadConfig : public ::testing::TestWithParam<std::string> {};

TEST_P(BadConfig, FailsWithMessageFileAndLine) {
  const fs::path file = kSource / "tests" / "configs" / GetParam();
  const std::string expect = header(file, "expect"), line = header(file, "line");
  ASSERT_FALSE(expect.empty()) << file << " lacks a '# expect: <substring>' first line";
  ASSERT_FALSE(line.empty()) << file << " lacks a '# line: N' second line";
  const std::string msg = error_of(file.string());
  EXPECT_NE(msg.find(expect), std::string::npos) << "message: " << msg << "\nexpected: " << expect;
  const std::string where = GetParam() + ":" + line + ": ";
  EXPECT_NE(msg.find(where), std::string::npos) << "message: " << msg << "\nexpected: " << where;
  EXPECT_EQ(msg.rfind(file.string(), 0), 0u) << "message should start with the file: " << msg;
}

INSTANTIATE_TEST_SUITE_P(Configs, BadConfig, ::testing::ValuesIn(bad_configs()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string n = fs::path(info.param).stem().string();
                           for (char& c : n)
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           return n;
                         });

TEST(BadConfigs, AtLeastTwelve) { EXPECT_GE(bad_configs().size(), 12u); }

// A scratch directory per test, removed at the end.
class TempDir : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("lora_cfg_" + std::to_string(::getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path write(const std::string& rel, const std::string& text) {
    fs::path p = dir_ / rel;
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
    return p;
  }
  fs::path dir_;
};

// Runs with the cwd set somewhere else, restored afterwards.
struct InDir {
  explicit InDir(const fs::path& d) : old(fs::current_path()) { fs::current_path(d); }
  ~InDir() { fs::current_path(old); }
  fs::path old;
};

std::string canon(const fs::path& p) { return fs::weakly_canonical(p).string(); }

TEST(ExampleConfigs, DemoLoads) {
  const fs::path yaml = kSource / "launch" / "examples" / "demo.yaml";
  RunConfig c;
  {
    InDir cwd(fs::temp_directory_path());  // paths must not depend on the cwd
    c = load_run_config(yaml.string());
  }
  EXPECT_EQ(c.source_path, yaml.string());
  EXPECT_EQ(c.model.n_layer, 4);
  EXPECT_EQ(c.model.n_head, 4);
  EXPECT_EQ(c.model.d_model, 128);
  EXPECT_EQ(c.model.vocab_size, 256);
  EXPECT_EQ(c.model.context, 64);
  EXPECT_EQ(c.lora.r, 16);
  EXPECT_FLOAT_EQ(c.lora.alpha, 32.0f);
  EXPECT_FLOAT_EQ(c.lora.dropout, 0.05f);
  EXPECT_EQ(c.lora.target_list(), "q,k,v,o,fc1,fc2");
  EXPECT_FLOAT_EQ(c.lora.scale(), 2.0f);
  EXPECT_FLOAT_EQ(c.optim.lr, 3e-3f);
  EXPECT_EQ(c.optim.warmup_steps, 20);
  EXPECT_EQ(c.optim.decay, "cosine");
  EXPECT_FLOAT_EQ(c.optim.grad_clip, 1.0f);
  EXPECT_EQ(c.train.steps, 300);
  EXPECT_EQ(c.train.batch_size, 16);
  EXPECT_EQ(c.train.micro_batch, 4);
  EXPECT_EQ(c.train.seq_len, 64);
  EXPECT_EQ(c.train.eval_every, 50);
  EXPECT_EQ(c.train.eval_batches, 4);
  EXPECT_EQ(c.train.log_every, 10);
  EXPECT_EQ(c.train.seed, 42u);
  EXPECT_EQ(c.parallel.tp, 2);
  EXPECT_EQ(c.parallel.dp, 2);
  EXPECT_EQ(c.data.train, canon(kSource / "data" / "demo_train.bin"));
  EXPECT_EQ(c.data.val, canon(kSource / "data" / "demo_val.bin"));
  EXPECT_EQ(c.output.dir, (kSource / "out" / "demo").lexically_normal().string());
  EXPECT_EQ(c.output.metrics, "metrics.jsonl");
}

TEST(ExampleConfigs, Gpt2BenchLoads) {
  RunConfig c = load_run_config((kSource / "launch" / "examples" / "gpt2_124m_bench.yaml").string());
  EXPECT_EQ(c.model.n_layer, 12);
  EXPECT_EQ(c.model.n_head, 12);
  EXPECT_EQ(c.model.d_model, 768);
  EXPECT_EQ(c.model.vocab_size, 50257);
  EXPECT_EQ(c.model.context, 1024);
  EXPECT_EQ(c.lora.r, 8);
  EXPECT_FLOAT_EQ(c.lora.alpha, 16.0f);
  EXPECT_EQ(c.lora.target_list(), "q,v");
  EXPECT_EQ(c.train.seq_len, 256);
  EXPECT_EQ(c.train.micro_batch, 4);
  EXPECT_EQ(c.train.batch_size, 4);
  EXPECT_EQ(c.data.train, canon(kSource / "data" / "demo_train.bin"));
  EXPECT_TRUE(c.data.val.empty());
}

using ConfigLoader = TempDir;

TEST_F(ConfigLoader, DefaultsApplyForLeftOutKeys) {
  write("t.bin", "xx");
  RunConfig c = load_run_config(write("run.yaml", "data:\n  train: t.bin\nmodel:\nlora: {}\n").string());
  const RunConfig d;
  EXPECT_EQ(c.model.n_layer, d.model.n_layer);
  EXPECT_EQ(c.model.n_head, d.model.n_head);
  EXPECT_EQ(c.model.d_model, d.model.d_model);
  EXPECT_EQ(c.model.vocab_size, d.model.vocab_size);
  EXPECT_EQ(c.model.context, d.model.context);
  EXPECT_FLOAT_EQ(c.model.ln_eps, d.model.ln_eps);
  EXPECT_EQ(c.model.init, d.model.init);
  EXPECT_EQ(c.model.init_seed, d.model.init_seed);
  EXPECT_EQ(c.lora.r, d.lora.r);
  EXPECT_FLOAT_EQ(c.lora.alpha, d.lora.alpha);
  EXPECT_EQ(c.lora.rslora, d.lora.rslora);
  for (int t = 0; t < lora::kNumTargets; ++t) EXPECT_EQ(c.lora.targets[t], d.lora.targets[t]);
  EXPECT_FLOAT_EQ(c.optim.lr, d.optim.lr);
  EXPECT_FLOAT_EQ(c.optim.beta2, d.optim.beta2);
  EXPECT_EQ(c.optim.decay, d.optim.decay);
  EXPECT_EQ(c.train.steps, d.train.steps);
  EXPECT_EQ(c.train.batch_size, d.train.batch_size);
  EXPECT_EQ(c.train.seq_len, d.train.seq_len);
  EXPECT_EQ(c.train.seed, d.train.seed);
  EXPECT_EQ(c.parallel.tp, 1);
  EXPECT_EQ(c.parallel.dp, 1);
  EXPECT_EQ(c.checkpoint.keep_last, d.checkpoint.keep_last);
  EXPECT_EQ(c.checkpoint.resume, "none");
  EXPECT_EQ(c.output.dir, d.output.dir);  // the default stays cwd-relative
  EXPECT_EQ(c.output.metrics, d.output.metrics);
  EXPECT_TRUE(c.data.val.empty());
}

TEST_F(ConfigLoader, RelativePathsResolveAgainstTheYamlDirectory) {
  write("shards/train.bin", "xx");
  write("shards/val.bin", "xx");
  write("weights/base.h5", "xx");
  write("ckpt/step_10.h5", "xx");
  const fs::path yaml = write("configs/sub/run.yaml",
                              "model: {init: file, weights_file: ../../weights/base.h5}\n"
                              "data:\n  train: ../../shards/train.bin\n  val: ../../shards/val.bin\n"
                              "checkpoint: {resume: ../../ckpt/step_10.h5}\n"
                              "output: {dir: ../../out/run1}\n");
  write("elsewhere/.keep", "");
  RunConfig c;
  {
    InDir cwd(dir_ / "elsewhere");
    c = load_run_config(fs::relative(yaml, dir_ / "elsewhere").string());  // a relative yaml path
  }
  const fs::path root = fs::canonical(dir_);
  EXPECT_EQ(canon(c.data.train), (root / "shards/train.bin").string());
  EXPECT_EQ(canon(c.data.val), (root / "shards/val.bin").string());
  EXPECT_EQ(canon(c.model.weights_file), (root / "weights/base.h5").string());
  EXPECT_EQ(canon(c.checkpoint.resume), (root / "ckpt/step_10.h5").string());
  EXPECT_EQ(fs::path(c.output.dir).filename(), "run1");
  EXPECT_TRUE(fs::path(c.data.train).is_absolute());
  EXPECT_TRUE(fs::path(c.output.dir).is_absolute());
  EXPECT_EQ(c.output.metrics, "metrics.jsonl");
}

TEST_F(ConfigLoader, AbsolutePathsAndResumeKeywordsStayAsWritten) {
  const fs::path train = write("t.bin", "xx");
  RunConfig c = load_run_config(
      write("run.yaml", "data: {train: " + train.string() + "}\ncheckpoint: {resume: auto}\n").string());
  EXPECT_EQ(c.data.train, train.string());
  EXPECT_EQ(c.checkpoint.resume, "auto");
}

TEST_F(ConfigLoader, TargetShortcuts) {
  write("t.bin", "xx");
  RunConfig all = load_run_config(write("a.yaml", "data: {train: t.bin}\nlora: {targets: all}\n").string());
  EXPECT_EQ(all.lora.target_list(), "q,k,v,o,fc1,fc2");  // GPT's own targets of all
  RunConfig att = load_run_config(write("b.yaml", "data: {train: t.bin}\nlora: {targets: attention}\n").string());
  EXPECT_EQ(att.lora.target_list(), "q,k,v,o");
  RunConfig mlp = load_run_config(write("c.yaml", "data: {train: t.bin}\nlora: {targets: [fc2, fc1]}\n").string());
  EXPECT_EQ(mlp.lora.target_list(), "fc1,fc2");
  const std::string llama = "data: {train: t.bin}\nmodel: {arch: llama, n_kv_head: 4, ffn: 2048}\n";
  RunConfig l_all = load_run_config(write("d.yaml", llama + "lora: {targets: all}\n").string());
  EXPECT_EQ(l_all.lora.target_list(), "q,k,v,o,gate,up,down");
  RunConfig l_mlp = load_run_config(write("e.yaml", llama + "lora: {targets: mlp}\n").string());
  EXPECT_EQ(l_mlp.lora.target_list(), "gate,up,down");
  RunConfig l_peft = load_run_config(write("f.yaml", llama + "lora: {targets: [q_proj, v, down_proj]}\n").string());
  EXPECT_EQ(l_peft.lora.target_list(), "q,v,down");
}

// The message names `key` and says `what`.
void expect_error(const std::string& yaml_path, const std::string& key, const std::string& what) {
  const std::string msg = error_of(yaml_path);
  EXPECT_NE(msg.find(key + ": "), std::string::npos) << msg;
  EXPECT_NE(msg.find(what), std::string::npos) << msg;
}

TEST_F(ConfigLoader, TargetsOfAnotherArchitectureAreRefused) {
  write("t.bin", "xx");
  expect_error(write("a.yaml", "data: {train: t.bin}\nmodel: {arch: llama}\nlora: {targets: [q, fc1]}\n").string(),
               "lora.targets", "'fc1' is not a target of the llama architecture");
  expect_error(write("b.yaml", "data: {train: t.bin}\nlora: {targets: [gate_proj]}\n").string(), "lora.targets",
               "'gate' is not a target of the gpt architecture");
}

TEST_F(ConfigLoader, LlamaShapeChecks) {
  write("t.bin", "xx");
  expect_error(write("a.yaml", "data: {train: t.bin}\nmodel: {arch: llama, n_head: 12, n_kv_head: 5}\n").string(),
               "model.n_kv_head", "must divide model.n_head = 12");
  expect_error(
      write("b.yaml", "data: {train: t.bin}\nmodel: {arch: llama, n_head: 8, n_kv_head: 2, d_model: 512}\nparallel: {tp: 4}\n")
          .string(),
      "parallel.tp", "must divide model.n_kv_head = 2");
  expect_error(write("c.yaml", "data: {train: t.bin}\nmodel: {n_kv_head: 4}\n").string(), "model.n_kv_head",
               "is a key of the llama architecture");
  expect_error(write("d.yaml", "data: {train: t.bin}\nmodel: {arch: llama, head_dim: 7}\n").string(), "model.head_dim",
               "must be even");
}

TEST_F(ConfigLoader, UnknownTargetShortcutIsAnError) {
  write("t.bin", "xx");
  std::string msg = error_of(write("a.yaml", "data: {train: t.bin}\nlora: {targets: ffn}\n").string());
  EXPECT_NE(msg.find("a.yaml:2: lora.targets: expected a list"), std::string::npos) << msg;
}

TEST(LoraScale, PlainAndRankStabilized) {
  lora::LoraConfig l;
  l.r = 16;
  l.alpha = 32;
  EXPECT_FLOAT_EQ(l.scale(), 2.0f);
  l.rslora = true;
  EXPECT_FLOAT_EQ(l.scale(), 8.0f);
}

TEST_F(ConfigLoader, RsloraFromYaml) {
  write("t.bin", "xx");
  RunConfig c = load_run_config(
      write("run.yaml", "data: {train: t.bin}\nlora: {r: 4, alpha: 8, rslora: true}\n").string());
  EXPECT_TRUE(c.lora.rslora);
  EXPECT_FLOAT_EQ(c.lora.scale(), 4.0f);
}

TEST_F(ConfigLoader, NullOptionalPathsMeanNone) {
  write("t.bin", "xx");
  RunConfig c = load_run_config(
      write("run.yaml", "data: {train: t.bin, val: ~}\nmodel: {weights_file: }\n").string());
  EXPECT_TRUE(c.data.val.empty());
  EXPECT_TRUE(c.model.weights_file.empty());
}

TEST_F(ConfigLoader, MissingAndEmptyFiles) {
  EXPECT_NE(error_of((dir_ / "nope.yaml").string()).find("nope.yaml: cannot read config file"),
            std::string::npos);
  std::string msg = error_of(write("empty.yaml", "# nothing\n").string());
  EXPECT_NE(msg.find("empty.yaml:1: data.train: required key is missing"), std::string::npos) << msg;
  msg = error_of(write("list.yaml", "- a\n- b\n").string());
  EXPECT_NE(msg.find("list.yaml:1: (top level): expected a mapping of sections"), std::string::npos)
      << msg;
}

TEST_F(ConfigLoader, StopsAtTheFirstErrorInDocumentOrder) {
  write("t.bin", "xx");
  std::string msg = error_of(
      write("run.yaml", "data: {train: t.bin}\nlora:\n  r: 0\n  alpha: -1\nfoo: 1\n").string());
  EXPECT_NE(msg.find("run.yaml:3: lora.r:"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("alpha"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("foo"), std::string::npos) << msg;
}

}  // namespace
