// `lora_dist prepare`: text in, token shards (io/token_shard.h) out, with the tokenizer of a
// model folder (io/tokenizer.h: tokenizer.json, tokenizer.model or GPT-2's vocab.json + merges.txt).
//   - a .jsonl input holds examples (io/jsonl_examples.h), each one of:
//     {"prompt", "completion"}: [BOS] prompt tokens, completion tokens, EOS (the folder's
//       end-of-sequence token: <|endoftext|> for GPT-2), and only the completion and the EOS are
//       scored (loss mask 1): the paper's objective, sum log p(y_t | x, y_<t);
//     {"messages": [{"role", "content"}...]}: the conversation rendered by the folder's chat
//       template (io/chat_template.h; tokenizer_config.json), and only the assistant turns (their
//       content and end-of-turn token) scored;
//   - any other input is plain text: [BOS] and every token, all scored (the text of a special
//     token, "<|endoftext|>", is that token).
// [BOS]: where the folder's tokenizer starts a sequence with one (Llama 2's <s>), not GPT-2.
// An example longer than seq_len + 1 tokens (one training window) is truncated to it or
// dropped, as asked, and counted. The validation set is a file of its own or a fraction of the
// JSONL examples (drawn by seed) and of each text file's tokens (its end).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "io/chat_template.h"
#include "io/tokenizer.h"

namespace lora {

struct PrepareOptions {
  std::string tokenizer;                // model folder with tokenizer.json, tokenizer.model or vocab.json + merges.txt
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

// A conversation rendered by the chat template (which writes its own BOS and end-of-turn
// tokens) and tokenized whole, special tokens' text becoming them; a token is scored (1) when
// it starts inside an assistant turn. The tokens are exactly those of the whole rendering
// (Hugging Face's apply_chat_template(tokenize=True)), whatever merges cross a turn's edge.
struct ChatTokens {
  RenderedChat rendered;
  std::vector<uint32_t> ids;
  std::vector<uint8_t> scored;
};
ChatTokens tokenize_chat(const Tokenizer& tok, const ChatTemplate& t, const std::vector<ChatMessage>& messages,
                         bool add_generation_prompt);

// Reads, tokenizes and writes. Throws InputError naming the file (and line) for bad input,
// std::invalid_argument for bad options.
PrepareSummary run_prepare(const PrepareOptions& o);

// The command: runs run_prepare, prints the summary lines, returns the exit status (0; 3 for an
// unusable input file, naming it; 2 for contradictory options).
int prepare_command(const PrepareOptions& o);

// "train: 120 examples, 4310 tokens, 2210 scored, 3 longer than seq_len 128 (truncated)".
std::string summary_line(const char* name, const ShardSummary& s, const PrepareOptions& o);

}  // namespace lora
