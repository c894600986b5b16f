// `lora_dist prepare` (trainer/prepare/prepare.h): JSONL prompt/completion examples become tokens
// whose loss mask is 1 exactly on the completion and the closing <|endoftext|>; plain text is
// scored everywhere; overlong examples are truncated or dropped and counted; a validation
// fraction is a deterministic, disjoint share; malformed JSONL lines are errors with file and
// line.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "io/gpt2_tokenizer.h"
#include "io/input_error.h"
#include "io/token_shard.h"
#include "trainer/prepare/prepare.h"
#include "unique_temp_path.h"

namespace lora {
namespace {

namespace fs = std::filesystem;
const fs::path kData = fs::path(LORA_SOURCE_DIR) / "tests/data/gpt2_bpe";

fs::path dir_for(const std::string& name) {
  const fs::path d = test::unique_temp_path("prepare_" + name);
  fs::remove_all(d);
  fs::create_directories(d / "tok");
  fs::copy_file(kData / "encoder.json", d / "tok/vocab.json");
  fs::copy_file(kData / "vocab.bpe", d / "tok/merges.txt");
  return d;
}

const Gpt2Tokenizer& gpt2() {
  static const Gpt2Tokenizer tok((kData / "encoder.json").string(), (kData / "vocab.bpe").string());
  return tok;
}

PrepareOptions options(const fs::path& d, const std::string& input) {
  PrepareOptions o;
  o.tokenizer = (d / "tok").string();
  o.inputs = {(d / input).string()};
  o.out_train = (d / "train.bin").string();
  o.out_val = (d / "val.bin").string();
  return o;
}

TEST(Prepare, CompletionAndEndOfTextAreScoredPromptIsNot) {
  const fs::path d = dir_for("mask");
  std::ofstream(d / "x.jsonl") << R"({"prompt": "Translate: chat", "completion": " cat", "id": 7})" "\n"
                               << R"({"prompt": "Q: 2+2?", "completion": " A: 4"})" "\n";
  const PrepareSummary s = run_prepare(options(d, "x.jsonl"));
  std::vector<uint32_t> want;
  std::vector<uint8_t> mask;
  for (auto [p, c] : {std::pair{"Translate: chat", " cat"}, std::pair{"Q: 2+2?", " A: 4"}}) {
    for (uint32_t t : gpt2().encode(p)) want.push_back(t), mask.push_back(0);
    for (uint32_t t : gpt2().encode(c)) want.push_back(t), mask.push_back(1);
    want.push_back(50256), mask.push_back(1);
  }
  const TokenShard shard = read_token_shard((d / "train.bin").string());
  EXPECT_EQ(shard.tokens, want);
  EXPECT_EQ(shard.mask, mask);
  EXPECT_EQ(s.train.examples, 2u);
  EXPECT_EQ(s.train.tokens, want.size());
  EXPECT_EQ(s.train.scored, uint64_t(std::count(mask.begin(), mask.end(), 1)));
  EXPECT_FALSE(fs::exists(d / "val.bin"));
}

TEST(Prepare, PlainTextIsScoredEverywhere) {
  const fs::path d = dir_for("text");
  std::ofstream(d / "a.txt") << "Hello world.<|endoftext|>Second document.";
  const PrepareSummary s = run_prepare(options(d, "a.txt"));
  const TokenShard shard = read_token_shard((d / "train.bin").string());
  EXPECT_EQ(shard.tokens, gpt2().encode_with_special("Hello world.<|endoftext|>Second document."));
  EXPECT_EQ(std::count(shard.tokens.begin(), shard.tokens.end(), 50256u), 1);
  EXPECT_EQ(shard.mask, std::vector<uint8_t>(shard.tokens.size(), 1));
  EXPECT_EQ(s.train.scored, shard.tokens.size());
}

TEST(Prepare, OverlongExamplesAreTruncatedOrDroppedAndCounted) {
  const fs::path d = dir_for("long");
  std::ofstream(d / "x.jsonl") << R"({"prompt": "a", "completion": " b"})" "\n"
                               << R"({"prompt": "one two three four five six", "completion": " seven eight nine"})" "\n";
  PrepareOptions o = options(d, "x.jsonl");
  o.seq_len = 4;  // windows of 5 tokens: the first example (3 tokens) fits, the second does not
  PrepareSummary s = run_prepare(o);
  EXPECT_EQ(s.train.overlong, 1u);
  EXPECT_EQ(s.train.examples, 2u);
  EXPECT_EQ(read_token_shard(o.out_train).size(), 3u + 5u);
  EXPECT_NE(summary_line("train", s.train, o).find("1 longer than seq_len 4 + 1 (truncated)"), std::string::npos);
  o.overlong = "drop";
  s = run_prepare(o);
  EXPECT_EQ(s.train.overlong, 1u);
  EXPECT_EQ(s.train.examples, 1u);
  EXPECT_EQ(read_token_shard(o.out_train).size(), 3u);
}

TEST(Prepare, ValidationFractionIsDeterministicAndDisjoint) {
  const fs::path d = dir_for("val");
  {
    std::ofstream f(d / "x.jsonl");
    for (int i = 0; i < 40; ++i) f << R"({"prompt": "n)" << i << R"(", "completion": " v)" << i << "\"}\n";
  }
  PrepareOptions o = options(d, "x.jsonl");
  o.val_fraction = 0.25;
  const PrepareSummary s = run_prepare(o);
  EXPECT_EQ(s.val.examples, 10u);
  EXPECT_EQ(s.train.examples, 30u);
  const TokenShard a = read_token_shard(o.out_val);
  run_prepare(o);
  EXPECT_EQ(read_token_shard(o.out_val).tokens, a.tokens);  // same seed, same split
  o.seed = 7;
  run_prepare(o);
  EXPECT_NE(read_token_shard(o.out_val).tokens, a.tokens);
  EXPECT_EQ(s.train.tokens + s.val.tokens, read_token_shard(o.out_train).size() + a.size());
}

TEST(Prepare, MalformedJsonlLinesAreErrorsWithFileAndLine) {
  const fs::path d = dir_for("bad");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"{\"prompt\": \"a\", \"completion\": \"b\"}\n{\"prompt\": \"a\", \"completion\": }\n", ":2: not valid JSON"},
      {"{\"prompt\": \"a\"}\n", ":1: no \"completion\""},
      {"{\"prompt\": \"a\", \"completion\": 5}\n", ":1: \"completion\" must be a string"},
      {"[1, 2]\n", ":1: expected an object"},
      {"{\"prompt\": \"a\", \"completion\": \"b\"}\n\n{\"prompt\": \"a\", \"completion\": \"b\"}\n", ":2: an empty line"},
      {"{\"prompt\": \"\\ud800\", \"completion\": \"b\"}\n", ":1: not valid JSON"},
      {"\n", ": no examples"},
  };
  for (const auto& [text, want] : cases) {
    std::ofstream(d / "x.jsonl") << text;
    try {
      run_prepare(options(d, "x.jsonl"));
      ADD_FAILURE() << "accepted: " << text;
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find((d / "x.jsonl").string() + want), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace lora
