// The GPT-2 tokenizer (io/gpt2_tokenizer.h): known GPT-2 encodings with the real files
// (tests/data/gpt2_bpe), the end-of-text token, byte-exact round trips, merges by rank on a
// hand-made vocabulary, and bad vocab.json / merges.txt files refused naming file and line.
// tests/tokenizer/tokenizer_test.py checks a whole corpus against the two references.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "io/gpt2_tokenizer.h"
#include "io/input_error.h"
#include "unique_temp_path.h"

namespace lora {
namespace {

namespace fs = std::filesystem;
const std::string kData = std::string(LORA_SOURCE_DIR) + "/tests/data/gpt2_bpe/";

const Gpt2Tokenizer& gpt2() {
  static const Gpt2Tokenizer tok(kData + "encoder.json", kData + "vocab.bpe");
  return tok;
}

TEST(Gpt2Tokenizer, KnownGpt2Encodings) {
  EXPECT_EQ(gpt2().encode("Hello world"), (std::vector<uint32_t>{15496, 995}));
  EXPECT_EQ(gpt2().encode(" Hello"), (std::vector<uint32_t>{18435}));
  EXPECT_EQ(gpt2().eot(), 50256u);
  EXPECT_EQ(gpt2().vocab_size(), 50257u);
  EXPECT_EQ(gpt2().merges(), 50000);
  // As encoder.py: "<|endoftext|>" in ordinary text is text; encode_with_special makes it the token.
  const std::vector<uint32_t> text = gpt2().encode("<|endoftext|>");
  EXPECT_GT(text.size(), 1u);
  EXPECT_EQ(std::count(text.begin(), text.end(), 50256u), 0);
  EXPECT_EQ(gpt2().decode(text), "<|endoftext|>");
  EXPECT_EQ(gpt2().encode_with_special("a<|endoftext|>b"),
            (std::vector<uint32_t>{gpt2().encode("a")[0], 50256, gpt2().encode("b")[0]}));
  EXPECT_EQ(gpt2().decode({50256}), "<|endoftext|>");
}

TEST(Gpt2Tokenizer, RoundTripIsByteExactAndInvalidUtf8IsRefused) {
  for (const std::string& s : std::vector<std::string>{"", "  \t\n x", "café 日本語 😀👍🏽 1234 don't", std::string(300, ','), "\x01\x7f"})
    EXPECT_EQ(gpt2().decode(gpt2().encode(s)), s);
  try {
    gpt2().encode("ok \xff\xfe bad");
    ADD_FAILURE() << "invalid UTF-8 accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("byte 3"), std::string::npos) << e.what();
  }
  EXPECT_THROW(gpt2().decode({60000}), std::out_of_range);
}

// A hand-made byte-level vocabulary: the 256 byte symbols, then the merges' results.
struct Files {
  fs::path dir;
  std::string vocab, merges;
};
Files write_small(const std::string& name, const std::string& merges_text, const std::function<void(nlohmann::json&)>& edit = nullptr) {
  Files f{test::unique_temp_path("tok_" + name), "", ""};
  fs::create_directories(f.dir);
  nlohmann::json v = nlohmann::json::object();
  int id = 0, n = 0;
  for (int b = 0; b < 256; ++b) {  // bytes_to_unicode, written independently of the library
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    const int cp = printable ? b : 256 + n++;
    std::string s;
    if (cp < 0x80) s += char(cp);
    else s += char(0xc0 | (cp >> 6)), s += char(0x80 | (cp & 0x3f));
    v[s] = id++;
  }
  for (const char* m : {"ab", "abc", "bc", "Ġa", "Ġab"}) v[m] = id++;
  v["<|endoftext|>"] = id++;
  if (edit) edit(v);
  f.vocab = (f.dir / "vocab.json").string();
  f.merges = (f.dir / "merges.txt").string();
  std::ofstream(f.vocab) << v.dump();
  std::ofstream(f.merges) << merges_text;
  return f;
}

TEST(Gpt2Tokenizer, MergesApplyByRankNotByOrderInTheWord) {
  // "b c" ranks before "a b": "abc" becomes a + bc, not ab + c, although "ab" comes first.
  Files f = write_small("rank", "#version: 0.2\nb c\na b\nab c\nĠ a\n");
  Gpt2Tokenizer t(f.vocab, f.merges);
  const auto ids = t.encode("abc");
  ASSERT_EQ(ids.size(), 2u);
  EXPECT_EQ(t.decode({ids[0]}), "a");
  EXPECT_EQ(t.decode({ids[1]}), "bc");
  // With "a b" first the other path is taken, ending in the one symbol "abc".
  Files g = write_small("rank2", "#version: 0.2\na b\nb c\nab c\n");
  EXPECT_EQ(Gpt2Tokenizer(g.vocab, g.merges).encode("abc").size(), 1u);
  EXPECT_EQ(Gpt2Tokenizer(g.vocab, g.merges).encode(" a").size(), 2u);  // "Ġ a" not listed: two symbols
}

std::string input_error(const Files& f) {
  try {
    Gpt2Tokenizer t(f.vocab, f.merges);
  } catch (const InputError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no InputError";
  return "";
}

TEST(Gpt2Tokenizer, BadFilesAreRefusedNamingFileAndLine) {
  auto has = [](const std::string& e, const std::string& part) { return e.find(part) != std::string::npos; };
  Files f = write_small("bad_line", "#version: 0.2\na b\nb  c\n");
  std::string e = input_error(f);
  EXPECT_TRUE(has(e, f.merges + ":3:") && has(e, "two symbols")) << e;
  f = write_small("bad_one", "#version: 0.2\na b\nabc\n");
  EXPECT_TRUE(has(input_error(f), f.merges + ":3:"));
  f = write_small("not_in_vocab", "#version: 0.2\na b\nb d\n");
  e = input_error(f);
  EXPECT_TRUE(has(e, f.merges + ":3:") && has(e, "\"bd\"") && has(e, "vocab.json")) << e;
  f = write_small("blank_middle", "#version: 0.2\na b\n\nb c\n");
  EXPECT_TRUE(has(input_error(f), f.merges + ":4:"));
  f = write_small("dup_id", "#version: 0.2\n", [](nlohmann::json& v) { v["abc"] = 0; });
  e = input_error(f);
  EXPECT_TRUE(has(e, f.vocab) && has(e, "id 0")) << e;
  f = write_small("neg_id", "#version: 0.2\n", [](nlohmann::json& v) { v["abc"] = -1; });
  EXPECT_TRUE(has(input_error(f), "\"abc\""));
  f = write_small("no_eot", "#version: 0.2\n", [](nlohmann::json& v) { v.erase("<|endoftext|>"); });
  EXPECT_TRUE(has(input_error(f), "<|endoftext|>"));
  f = write_small("missing_byte", "#version: 0.2\n", [](nlohmann::json& v) { v.erase("a"); });
  EXPECT_TRUE(has(input_error(f), "byte 97"));
  f = write_small("not_byte_level", "#version: 0.2\n", [](nlohmann::json& v) { v["日本"] = 9999; });
  EXPECT_TRUE(has(input_error(f), "stands for no byte"));
  f = write_small("bad_json", "#version: 0.2\n");
  std::ofstream(f.vocab) << "{\"a\": 1,\n \"b\": }";
  e = input_error(f);
  EXPECT_TRUE(has(e, f.vocab) && has(e, "line 2")) << e;
  Files m = write_small("missing", "");
  fs::remove(m.merges);
  EXPECT_TRUE(has(input_error(m), m.merges + ": not found"));
}

}  // namespace
}  // namespace lora
