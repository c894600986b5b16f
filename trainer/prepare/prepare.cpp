#include "trainer/prepare/prepare.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>
#include <sstream>
#include <stdexcept>

#include "io/gpt2_tokenizer.h"
#include "io/input_error.h"
#include "io/jsonl_examples.h"
#include "io/token_shard.h"
#include "trainer/config/config_loader.h"

namespace lora {

namespace {

// Tokens and their loss mask, appended example after example.
struct TokenStream {
  std::vector<uint32_t> tokens;
  std::vector<uint8_t> mask;
  ShardSummary summary;
};

bool is_jsonl(const std::string& path) {
  const std::string ext = std::filesystem::path(path).extension().string();
  return ext == ".jsonl" || ext == ".JSONL";
}

std::string read_text(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) throw InputError(path + ": not found (or not a regular file)");
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void add_example(const Gpt2Tokenizer& tok, const PromptCompletion& ex, const std::string& path,
                 const PrepareOptions& o, TokenStream& out) {
  std::vector<uint32_t> ids;
  size_t n_prompt = 0;
  try {
    ids = tok.encode(ex.prompt);
    n_prompt = ids.size();
    const std::vector<uint32_t> c = tok.encode(ex.completion);
    ids.insert(ids.end(), c.begin(), c.end());
  } catch (const std::invalid_argument& e) {  // JSON strings are UTF-8, but "\ud800" escapes are not
    throw InputError(path + ":" + std::to_string(ex.line) + ": " + e.what());
  }
  ids.push_back(tok.eot());
  const size_t window = o.seq_len > 0 ? size_t(o.seq_len) + 1 : ids.size();
  if (ids.size() > window) {
    ++out.summary.overlong;
    if (o.overlong == "drop") return;
    ids.resize(window);
  }
  ++out.summary.examples;
  for (size_t i = 0; i < ids.size(); ++i) {
    out.tokens.push_back(ids[i]);
    out.mask.push_back(i >= n_prompt ? 1 : 0);
    out.summary.scored += i >= n_prompt;
  }
  out.summary.tokens += ids.size();
}

void add_text(const std::vector<uint32_t>& ids, TokenStream& out) {
  out.tokens.insert(out.tokens.end(), ids.begin(), ids.end());
  out.mask.insert(out.mask.end(), ids.size(), 1);
  ++out.summary.examples;
  out.summary.tokens += ids.size();
  out.summary.scored += ids.size();
}

std::vector<uint32_t> encode_file(const Gpt2Tokenizer& tok, const std::string& path) {
  try {
    return tok.encode_with_special(read_text(path));
  } catch (const std::invalid_argument& e) {
    throw InputError(path + ": " + e.what());
  }
}

// Adds `path` to `train`, holding out `fraction` of it in `val` (null: none).
void add_file(const Gpt2Tokenizer& tok, const std::string& path, const PrepareOptions& o, double fraction,
              std::mt19937_64& rng, TokenStream& train, TokenStream* val) {
  if (is_jsonl(path)) {
    const std::vector<PromptCompletion> examples = read_prompt_completion_jsonl(path);
    std::vector<size_t> order(examples.size());
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng);
    const size_t n_val = val ? static_cast<size_t>(fraction * double(examples.size()) + 0.5) : 0;
    std::vector<bool> held(examples.size(), false);
    for (size_t i = 0; i < n_val; ++i) held[order[i]] = true;
    for (size_t i = 0; i < examples.size(); ++i)  // file order within each set
      add_example(tok, examples[i], path, o, held[i] ? *val : train);
    return;
  }
  const std::vector<uint32_t> ids = encode_file(tok, path);
  const size_t n_val = val ? static_cast<size_t>(fraction * double(ids.size()) + 0.5) : 0;
  add_text(std::vector<uint32_t>(ids.begin(), ids.end() - n_val), train);
  if (n_val) add_text(std::vector<uint32_t>(ids.end() - n_val, ids.end()), *val);
}

void write(const std::string& path, const TokenStream& s, uint32_t vocab) {
  if (s.tokens.size() < 2)
    throw InputError(path + ": " + std::to_string(s.tokens.size()) + " token(s) to write; a shard needs at least 2");
  write_token_shard(path, s.tokens, vocab, &s.mask, vocab <= 65536 ? 2 : 4);
}

}  // namespace

PrepareSummary run_prepare(const PrepareOptions& o) {
  if (o.inputs.empty()) throw std::invalid_argument("prepare: no input files");
  if (!(o.val_fraction >= 0 && o.val_fraction < 1)) throw std::invalid_argument("prepare: --val-fraction must be in [0, 1)");
  if (o.val_fraction > 0 && !o.val_inputs.empty())
    throw std::invalid_argument("prepare: a validation set comes from --val files or from --val-fraction, not both");
  if (o.overlong != "truncate" && o.overlong != "drop")
    throw std::invalid_argument("prepare: --overlong must be truncate or drop");
  const bool has_val = o.val_fraction > 0 || !o.val_inputs.empty();
  if (has_val && o.out_val.empty()) throw std::invalid_argument("prepare: a validation set needs --out-val");
  const auto tok = Gpt2Tokenizer::from_folder(o.tokenizer);
  std::mt19937_64 rng(o.seed);
  TokenStream train, val;
  for (const std::string& in : o.inputs) add_file(*tok, in, o, o.val_fraction, rng, train, o.val_fraction > 0 ? &val : nullptr);
  for (const std::string& in : o.val_inputs) add_file(*tok, in, o, 0, rng, val, nullptr);
  write(o.out_train, train, tok->vocab_size());
  if (has_val) write(o.out_val, val, tok->vocab_size());
  return PrepareSummary{train.summary, val.summary};
}

std::string summary_line(const char* name, const ShardSummary& s, const PrepareOptions& o) {
  std::string line = std::string(name) + ": " + std::to_string(s.examples) + " examples, " + std::to_string(s.tokens) +
                     " tokens, " + std::to_string(s.scored) + " scored";
  if (o.seq_len > 0)
    line += ", " + std::to_string(s.overlong) + " longer than seq_len " + std::to_string(o.seq_len) + " + 1 (" +
            (o.overlong == "drop" ? "dropped" : "truncated") + ")";
  return line;
}

int prepare_command(const PrepareOptions& o) {
  try {
    const PrepareSummary s = run_prepare(o);
    std::printf("prepare: %s -> %s\n", summary_line("train", s.train, o).c_str(), o.out_train.c_str());
    if (o.val_fraction > 0 || !o.val_inputs.empty())
      std::printf("prepare: %s -> %s\n", summary_line("val", s.val, o).c_str(), o.out_val.c_str());
    return 0;
  } catch (const InputError& e) {
    std::fprintf(stderr, "lora_dist: input error: %s\n", e.what());
    return kExitBadInput;
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "lora_dist: %s\n", e.what());
    return kExitConfig;
  }
}

}  // namespace lora
