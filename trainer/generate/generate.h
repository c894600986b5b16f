// `lora_dist generate`: prompt text in, the model's continuation out, with or without a
// trained adapter (adapter.h5 / a checkpoint, or a PEFT folder), under the run's TP layout.
// Each TP rank holds its shard of the base and of the KV cache (model/kv_cache.h); a new token
// costs one row through the model. The last token's vocabulary-parallel logits are gathered
// over TP (gather-from-TP-region), every rank draws the same token (trainer/generate/sampling.h), and
// an all-reduce checks that they did.
#pragma once
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "trainer/config/run_config.h"
#include "trainer/generate/sampling.h"

namespace lora {

struct GenerateOptions {
  std::string yaml;
  std::string adapter;      // adapter.h5 or a checkpoint of a run of this config; or:
  std::string peft;         // a PEFT LoRA adapter folder that fits lora.targets (lora.init_from's rules)
  std::string tokenizer;    // model folder (tokenizer.json, tokenizer.model or vocab.json + merges.txt),
                            // or "bytes" (one token per byte);
                            // default: model.path of an hf base
  std::string prompt;       // the prompt text, or:
  std::string prompt_file;  // a file holding it ("-": standard input)
  int max_new_tokens = 64;
  std::vector<std::string> stop;  // stop once the continuation ends with one of these
  bool ignore_eot = false;        // go on past the end-of-sequence token (<|endoftext|>, </s>, ...)
  SamplingConfig sampling;        // temperature 0 (the default): greedy
  std::string json;               // append a JSON record of the run to this file
  // Exact-match evaluation instead of one prompt: a JSONL file of {"prompt", "completion"
  // [, "task"]} records; each prompt is continued (until a --stop string, "\n" by default, the
  // end-of-sequence token or max_new_tokens) and the answer, with the stop string cut off,
  // compared with the completion. eval_out: one JSON line per record, then the accuracy line.
  std::string eval;
  std::string eval_out;
};

// Every rank: builds the model, loads the base and the adapter, generates. World rank 0
// streams the continuation to stdout and a summary line to stderr. Throws ConfigError for a
// bad prompt or tokenizer choice, InputError (via agree_on_failure) for unusable files.
void run_generate(const RunConfig& cfg, Communicator& comm, const GenerateOptions& o);

// One record of an --eval file.
struct EvalRecord {
  std::string task;        // "task" when the record has one, else "all"
  std::string prompt;
  std::string completion;  // the expected answer
};
// Reads an --eval JSONL file; InputError naming the file, the line and the key for a line that
// is not a JSON object with string "prompt" and "completion" (and, if present, "task"), or a file
// with no record.
std::vector<EvalRecord> read_eval_file(const std::string& path);

}  // namespace lora
