#include "trainer/prepare/prepare.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <numeric>
#include <optional>
#include <random>
#include <sstream>
#include <stdexcept>

#include "io/chat_template.h"
#include "io/input_error.h"
#include "io/jsonl_examples.h"
#include "io/token_shard.h"
#include "io/tokenizer.h"
#include "io/tokenizer_config.h"
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

// A model folder's tokenizer and, once a conversation needs it, its chat template.
struct Vocabulary {
  std::unique_ptr<Tokenizer> tok;
  std::string folder;
  std::optional<ChatTemplate> chat;  // recognised on the first "messages" example

  const ChatTemplate& chat_template() {
    if (!chat) chat = recognise_chat_template(read_tokenizer_config(folder));  // InputError naming the key
    return *chat;
  }
};

// A prompt/completion example: [BOS] prompt completion EOS, scored from the completion on.
std::vector<uint32_t> prompt_completion_ids(const Tokenizer& tok, const JsonlExample& ex, size_t& n_prompt) {
  std::vector<uint32_t> ids;
  if (tok.bos()) ids.push_back(*tok.bos());
  const std::vector<uint32_t> p = tok.encode(ex.prompt), c = tok.encode(ex.completion);
  ids.insert(ids.end(), p.begin(), p.end());
  n_prompt = ids.size();
  ids.insert(ids.end(), c.begin(), c.end());
  ids.push_back(tok.eos());
  return ids;
}

std::vector<uint32_t> chat_ids(Vocabulary& v, const JsonlExample& ex, std::vector<uint8_t>& scored) {
  ChatTokens c = tokenize_chat(*v.tok, v.chat_template(), ex.messages, /*add_generation_prompt=*/false);
  scored = std::move(c.scored);
  return std::move(c.ids);
}

void add_example(Vocabulary& v, const JsonlExample& ex, const std::string& path, const PrepareOptions& o, TokenStream& out) {
  std::vector<uint32_t> ids;
  std::vector<uint8_t> scored;
  try {
    if (ex.is_chat()) {
      ids = chat_ids(v, ex, scored);
    } else {
      size_t n_prompt = 0;
      ids = prompt_completion_ids(*v.tok, ex, n_prompt);
      scored.assign(ids.size(), 1);
      std::fill(scored.begin(), scored.begin() + static_cast<std::ptrdiff_t>(n_prompt), 0);
    }
  } catch (const std::invalid_argument& e) {  // JSON strings are UTF-8, but "\ud800" escapes are not; roles
    throw InputError(path + ":" + std::to_string(ex.line) + ": " + e.what());
  }
  const size_t window = o.seq_len > 0 ? size_t(o.seq_len) + 1 : ids.size();
  if (ids.size() > window) {
    ++out.summary.overlong;
    if (o.overlong == "drop") return;
    ids.resize(window);
    scored.resize(window);
  }
  ++out.summary.examples;
  for (size_t i = 0; i < ids.size(); ++i) {
    out.tokens.push_back(ids[i]);
    out.mask.push_back(scored[i]);
    out.summary.scored += scored[i];
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

// A text file: [BOS] its tokens, the text of special tokens ("<|endoftext|>") becoming them.
std::vector<uint32_t> encode_file(const Tokenizer& tok, const std::string& path) {
  try {
    std::vector<uint32_t> ids = tok.encode_with_special(read_text(path));
    if (tok.bos()) ids.insert(ids.begin(), *tok.bos());
    return ids;
  } catch (const std::invalid_argument& e) {
    throw InputError(path + ": " + e.what());
  }
}

// Adds `path` to `train`, holding out `fraction` of it in `val` (null: none).
void add_file(Vocabulary& v, const std::string& path, const PrepareOptions& o, double fraction,
              std::mt19937_64& rng, TokenStream& train, TokenStream* val) {
  if (is_jsonl(path)) {
    const std::vector<JsonlExample> examples = read_jsonl_examples(path);
    std::vector<size_t> order(examples.size());
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng);
    const size_t n_val = val ? static_cast<size_t>(fraction * double(examples.size()) + 0.5) : 0;
    std::vector<bool> held(examples.size(), false);
    for (size_t i = 0; i < n_val; ++i) held[order[i]] = true;
    for (size_t i = 0; i < examples.size(); ++i)  // file order within each set
      add_example(v, examples[i], path, o, held[i] ? *val : train);
    return;
  }
  const std::vector<uint32_t> ids = encode_file(*v.tok, path);
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

ChatTokens tokenize_chat(const Tokenizer& tok, const ChatTemplate& t, const std::vector<ChatMessage>& messages,
                         bool add_generation_prompt) {
  ChatTokens c;
  c.rendered = render_chat(t, messages, add_generation_prompt);
  const TokenOffsets ids = tok.encode_with_offsets(c.rendered.text);
  c.ids = ids.ids;
  c.scored.assign(ids.ids.size(), 0);
  for (size_t i = 0; i < ids.ids.size(); ++i)
    for (const auto& [a, b] : c.rendered.assistant) c.scored[i] |= ids.starts[i] >= a && ids.starts[i] < b;
  return c;
}

PrepareSummary run_prepare(const PrepareOptions& o) {
  if (o.inputs.empty()) throw std::invalid_argument("prepare: no input files");
  if (!(o.val_fraction >= 0 && o.val_fraction < 1)) throw std::invalid_argument("prepare: --val-fraction must be in [0, 1)");
  if (o.val_fraction > 0 && !o.val_inputs.empty())
    throw std::invalid_argument("prepare: a validation set comes from --val files or from --val-fraction, not both");
  if (o.overlong != "truncate" && o.overlong != "drop")
    throw std::invalid_argument("prepare: --overlong must be truncate or drop");
  const bool has_val = o.val_fraction > 0 || !o.val_inputs.empty();
  if (has_val && o.out_val.empty()) throw std::invalid_argument("prepare: a validation set needs --out-val");
  Vocabulary v{load_tokenizer(o.tokenizer), o.tokenizer, std::nullopt};
  std::mt19937_64 rng(o.seed);
  TokenStream train, val;
  for (const std::string& in : o.inputs) add_file(v, in, o, o.val_fraction, rng, train, o.val_fraction > 0 ? &val : nullptr);
  for (const std::string& in : o.val_inputs) add_file(v, in, o, 0, rng, val, nullptr);
  write(o.out_train, train, v.tok->vocab_size());
  if (has_val) write(o.out_val, val, v.tok->vocab_size());
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
