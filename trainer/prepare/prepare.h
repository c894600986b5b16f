// `lora_dist prepare`: text in, token shards (io/token_shard.h) out, with the GPT-2 tokenizer
// of a model folder (io/gpt2_tokenizer.h).
//   - a .jsonl input holds {"prompt", "completion"} examples (io/jsonl_examples.h): each becomes
//     prompt tokens, completion tokens and <|endoftext|>, and only the completion and the
//     <|endoftext|> are scored (loss mask 1): the paper's objective, sum log p(y_t | x, y_<t);
//   - any other input is plain text: every token is scored ("<|endoftext|>" in it is the token).
// An example longer than seq_len + 1 tokens (one training window) is truncated to it or
// dropped, as asked, and counted. The validation set is a file of its own or a fraction of the
// JSONL examples (drawn by seed) and of each text file's tokens (its end).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace lora {

struct PrepareOptions {
  std::string tokenizer;                // folder with vocab.json and merges.txt
  std::vector<std::string> inputs;      // training files
  std::vector<std::string> val_inputs;  // validation files, or:
  double val_fraction = 0;              // the share of the training inputs held out, in [0, 1)
  std::string out_train, out_val;       // shards to write (out_val when there is a validation set)
  int seq_len = 0;                      // windows of seq_len + 1 tokens; 0: no limit on examples
  std::string overlong = "truncate";    // "truncate" or "drop" an example longer than a window
  uint64_t seed = 42;                   // which JSONL examples go to validation
};

struct ShardSummary {
  uint64_t examples = 0, tokens = 0, scored = 0, overlong = 0;
};
struct PrepareSummary {
  ShardSummary train, val;
};

// Reads, tokenizes and writes. Throws InputError naming the file (and line) for bad input,
// std::invalid_argument for bad options.
PrepareSummary run_prepare(const PrepareOptions& o);

// The command: runs run_prepare, prints the summary lines, returns the exit status (0; 3 for an
// unusable input file, naming it; 2 for contradictory options).
int prepare_command(const PrepareOptions& o);

// "train: 120 examples, 4310 tokens, 2210 scored, 3 longer than seq_len 128 (truncated)".
std::string summary_line(const char* name, const ShardSummary& s, const PrepareOptions& o);

}  // namespace lora
