#include "trainer/generate/generate.h"

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "comm/collective_guard.h"
#include "io/checkpoint.h"
#include "io/input_error.h"
#include "io/tokenizer.h"
#include "model/gpt.h"
#include "trainer/config/config_loader.h"
#include "trainer/train/load_base.h"
#include "trainer/train/lora_init_from.h"

namespace lora {

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Text <-> token ids: a model folder's tokenizer (io/tokenizer.h), or raw bytes (the demo's
// byte-level models, vocab 256).
struct Codec {
  std::unique_ptr<Tokenizer> tok;  // null: one token per byte
  // Tokens that end generation besides the tokenizer's EOS: generation_config.json's
  // eos_token_id (Llama 3 Instruct ends a turn with <|eot_id|>, not <|end_of_text|>).
  std::vector<int32_t> more_stops;

  // The prompt, with the tokenizer's BOS first where it puts one; special tokens' text is them.
  std::vector<int32_t> encode(const std::string& text) const {
    if (!tok) {
      const auto* bytes = reinterpret_cast<const uint8_t*>(text.data());
      return std::vector<int32_t>(bytes, bytes + text.size());
    }
    std::vector<uint32_t> ids = tok->encode_with_special(text);
    if (tok->bos()) ids.insert(ids.begin(), *tok->bos());
    return std::vector<int32_t>(ids.begin(), ids.end());
  }
  // The text of all of `ids` (a tokenizer may decode a token differently at the start, as
  // Llama 2's drops the first space: the new text is what decoding all of them adds).
  std::string decode(const std::vector<int32_t>& ids) const {
    if (!tok) return std::string(ids.begin(), ids.end());
    return tok->decode(std::vector<uint32_t>(ids.begin(), ids.end()));
  }
  std::optional<int32_t> eot() const {
    if (!tok) return std::nullopt;
    return static_cast<int32_t>(tok->eos());
  }
  bool ends_generation(int32_t token) const {
    return (eot() && token == *eot()) || std::find(more_stops.begin(), more_stops.end(), token) != more_stops.end();
  }
};

// DIR/generation_config.json's eos_token_id, one id or a list (none: no file or no key).
std::vector<int32_t> generation_eos_ids(const std::string& dir) {
  const std::filesystem::path file = std::filesystem::path(dir) / "generation_config.json";
  std::error_code ec;
  if (!std::filesystem::is_regular_file(file, ec)) return {};
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(std::ifstream(file));
  } catch (const nlohmann::json::exception& e) {
    throw InputError(file.string() + ": not valid JSON: " + e.what());
  }
  std::vector<int32_t> ids;
  if (!j.is_object() || !j.contains("eos_token_id") || j["eos_token_id"].is_null()) return ids;
  const nlohmann::json& e = j["eos_token_id"];
  for (const auto& v : e.is_array() ? e : nlohmann::json::array({e})) {
    if (!v.is_number_integer() || v.get<long long>() < 0 || v.get<long long>() > INT32_MAX)
      throw InputError(file.string() + ": key eos_token_id: " + v.dump() + " is not a token id");
    ids.push_back(v.get<int32_t>());
  }
  return ids;
}

Codec make_codec(const RunConfig& cfg, const GenerateOptions& o) {
  std::string dir = o.tokenizer;
  if (dir.empty() && cfg.model.init == "hf") dir = cfg.model.path;
  if (dir.empty())
    throw ConfigError("generate: no tokenizer: give --tokenizer DIR (a model folder with tokenizer.json, tokenizer.model "
                      "or vocab.json + merges.txt) or --tokenizer bytes (model.init is " + cfg.model.init +
                      ", so there is no model folder to take one from)");
  Codec c;
  if (dir == "bytes") return c;  // each prompt byte is checked against model.vocab_size below
  c.tok = load_tokenizer(dir);  // InputError naming the folder or file
  c.more_stops = generation_eos_ids(dir);
  if (static_cast<int64_t>(c.tok->vocab_size()) > cfg.model.vocab_size)
    throw ConfigError("generate: the tokenizer in " + dir + " has " + std::to_string(c.tok->vocab_size()) +
                      " ids, more than model.vocab_size " + std::to_string(cfg.model.vocab_size) + " of " +
                      cfg.source_path);
  return c;
}

// Where the prompt came from, for messages.
std::string prompt_source(const GenerateOptions& o) {
  return o.prompt_file.empty() ? "--prompt" : o.prompt_file == "-" ? "the prompt on standard input" : o.prompt_file;
}

std::string read_prompt(const GenerateOptions& o) {
  if (o.prompt_file.empty()) return o.prompt;
  if (o.prompt_file == "-") return std::string(std::istreambuf_iterator<char>(std::cin), {});
  std::ifstream f(o.prompt_file, std::ios::binary);
  if (!f) throw InputError(o.prompt_file + ": cannot read the prompt file");
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// Why generation ended.
const char* kStopMaxTokens = "max-new-tokens";
const char* kStopContext = "context full";
const char* kStopEot = "end of sequence";
const char* kStopString = "stop string";

// The answer of a continuation: the text with the stop string it ended on cut off.
std::string answer_of(const std::string& text, const std::vector<std::string>& stops) {
  for (const std::string& s : stops)
    if (text.size() >= s.size() && text.compare(text.size() - s.size(), s.size(), s) == 0)
      return text.substr(0, text.size() - s.size());
  return text;
}

// --eval: every record's prompt continued (by `next(i)`: the text and why it stopped), its answer
// compared with the completion. World rank 0 writes --eval-out (one line per record, then the
// accuracy line) and the per-task table on stdout.
template <typename Next>
void run_eval(const GenerateOptions& o, const std::vector<EvalRecord>& records,
              const std::vector<std::vector<int32_t>>& prompts, const std::vector<std::string>& stops, bool out,
              const std::string& source, int tp, Next&& next) {
  std::ofstream f;
  if (out && !o.eval_out.empty()) {
    f.open(o.eval_out, std::ios::trunc);
    if (!f) throw std::runtime_error(o.eval_out + ": cannot write the --eval-out file");
  }
  std::vector<std::string> tasks;  // in order of first appearance
  std::map<std::string, std::pair<int, int>> count;  // task -> (correct, records)
  const auto t0 = Clock::now();
  for (size_t i = 0; i < records.size(); ++i) {
    const EvalRecord& r = records[i];
    const auto [text, stopped] = next(i);
    const std::string answer = answer_of(text, stops);
    const bool correct = answer == r.completion;
    if (!count.count(r.task)) tasks.push_back(r.task);
    count[r.task].first += correct;
    count[r.task].second += 1;
    if (f.is_open())
      f << nlohmann::json({{"type", "answer"}, {"index", i}, {"task", r.task}, {"prompt", r.prompt},
                           {"expected", r.completion}, {"answer", answer}, {"stopped", stopped},
                           {"prompt_tokens", prompts[i].size()}, {"correct", correct}})
               .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
        << "\n";
  }
  if (!out) return;
  int all_correct = 0, all_n = 0;
  nlohmann::json per_task = nlohmann::json::object();
  std::printf("exact match on %s (%zu records, %s, tp %d%s):\n", o.eval.c_str(), records.size(),
              o.sampling.describe().c_str(), tp, source.c_str());
  std::printf("  %-12s %8s %8s %9s\n", "task", "correct", "records", "accuracy");
  for (const std::string& t : tasks) {
    const auto [c, n] = count[t];
    all_correct += c;
    all_n += n;
    per_task[t] = {{"correct", c}, {"records", n}, {"accuracy", double(c) / n}};
    std::printf("  %-12s %8d %8d %8.1f%%\n", t.c_str(), c, n, 100.0 * c / n);
  }
  std::printf("  %-12s %8d %8d %8.1f%%\n", "all", all_correct, all_n, 100.0 * all_correct / all_n);
  std::fflush(stdout);
  std::fprintf(stderr, "generate: --eval: %zu prompts in %.1f s\n", records.size(), seconds_since(t0));
  if (f.is_open()) {
    f << nlohmann::json({{"type", "accuracy"}, {"eval", o.eval}, {"correct", all_correct}, {"records", all_n},
                         {"accuracy", double(all_correct) / all_n}, {"tasks", per_task}})
             .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
      << "\n";
    if (!f) throw std::runtime_error(o.eval_out + ": cannot write the --eval-out file");
  }
}

}  // namespace

std::vector<EvalRecord> read_eval_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw InputError(path + ": cannot read the --eval file");
  std::vector<EvalRecord> records;
  std::string line;
  for (int n = 1; std::getline(f, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;  // blank lines are skipped
    const std::string at = path + ":" + std::to_string(n);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      throw InputError(at + ": not valid JSON: " + e.what());
    }
    if (!j.is_object()) throw InputError(at + ": a record must be a JSON object with \"prompt\" and \"completion\"");
    EvalRecord r;
    for (const char* key : {"prompt", "completion"}) {
      if (!j.contains(key)) throw InputError(at + ": no key \"" + key + "\"");
      if (!j[key].is_string())
        throw InputError(at + ": \"" + key + "\" must be a string (got " +
                         j[key].dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + ")");
    }
    r.prompt = j["prompt"].get<std::string>();
    r.completion = j["completion"].get<std::string>();
    r.task = "all";
    if (j.contains("task")) {
      if (!j["task"].is_string() || j["task"].get<std::string>().empty())
        throw InputError(at + ": \"task\" must be a non-empty string (got " +
                         j["task"].dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + ")");
      r.task = j["task"].get<std::string>();
    }
    if (r.prompt.empty()) throw InputError(at + ": \"prompt\" is empty");
    records.push_back(std::move(r));
  }
  if (records.empty()) throw InputError(path + ": no records (one JSON object a line: {\"prompt\", \"completion\"})");
  return records;
}

void run_generate(const RunConfig& cfg, Communicator& comm, const GenerateOptions& o) {
  const bool out = comm.rank(Group::World) == 0;
  const bool eval = !o.eval.empty();
  const Codec codec = make_codec(cfg, o);
  const int context = cfg.model.context;
  // A prompt's tokens, checked against the vocabulary and the context. `source` names it in
  // messages; a bad --prompt is a usage error, a bad file an input error.
  auto encode_checked = [&](const std::string& text, const std::string& source, bool is_option) {
    auto refuse = [&](const std::string& what) -> void {
      if (is_option) throw ConfigError("generate: " + source + ": " + what);
      throw InputError(source + ": " + what);
    };
    std::vector<int32_t> ids;
    try {
      ids = codec.encode(text);
    } catch (const std::invalid_argument& e) {  // the GPT-2 tokenizer takes UTF-8 text only
      refuse(e.what());
    }
    for (size_t i = 0; i < ids.size(); ++i)
      if (ids[i] >= cfg.model.vocab_size)  // only bytes can be: a larger BPE vocabulary is refused above
        refuse("byte " + std::to_string(ids[i]) + " at offset " + std::to_string(i) + " is not a token of " +
               "model.vocab_size " + std::to_string(cfg.model.vocab_size) + " (" + cfg.source_path + ")");
    if (ids.empty()) {
      if (!codec.eot()) refuse("the prompt is empty");
      ids.push_back(*codec.eot());  // GPT-2 starts unconditional samples at <|endoftext|>
    }
    // The command's own prompt (--prompt or --prompt-file) too long for the config's context is a
    // usage error, as a --max-new-tokens too large would be; an --eval record's, an input error.
    if (static_cast<int>(ids.size()) >= context && !eval)
      throw ConfigError("generate: " + source + ": the prompt is " + std::to_string(ids.size()) + " tokens; model.context " +
                        std::to_string(context) + " leaves no room for a new one");
    if (static_cast<int>(ids.size()) >= context)
      refuse("the prompt is " + std::to_string(ids.size()) + " tokens; model.context " + std::to_string(context) +
             " leaves no room for a new one");
    return ids;
  };
  std::vector<EvalRecord> records;
  std::vector<std::vector<int32_t>> prompts;
  std::vector<std::string> stops = o.stop;
  if (eval) {
    records = read_eval_file(o.eval);
    // Each record is read on every rank and refused the same way on each, so no collective waits.
    std::ifstream f(o.eval, std::ios::binary);
    std::string line;
    int n = 0;
    for (const EvalRecord& r : records) {
      // The record's line number, for messages: count non-blank lines as read_eval_file does.
      do {
        std::getline(f, line);
        ++n;
      } while (line.find_first_not_of(" \t\r") == std::string::npos);
      prompts.push_back(encode_checked(r.prompt, o.eval + ":" + std::to_string(n) + ": \"prompt\"", false));
    }
    if (stops.empty()) stops.push_back("\n");  // an answer is one line
  } else {
    const std::string text = read_prompt(o);
    prompts.push_back(encode_checked(text, prompt_source(o), /*is_option=*/o.prompt_file.empty()));
  }

  // The adapter's pairs only when there is an adapter: a base alone runs no LoRA GEMMs.
  LoraConfig lc = cfg.lora;
  const bool with_adapter = !o.adapter.empty() || !o.peft.empty();
  if (!with_adapter) std::fill(std::begin(lc.targets), std::end(lc.targets), false);
  lc.enabled = true;  // a full fine-tuning config's weights (model.h5) are just a base here: no gradients
  // One sequence of up to `context` rows (the prompt's prefill); one block's activations.
  GptModel<float> model(cfg.model, lc, comm, 1, context, /*recompute=*/true);
  load_frozen_base(cfg, model, comm, out ? stderr : nullptr);  // stdout is the text alone
  const int tp_rank = model.dims().tp_rank;
  if (!o.adapter.empty())
    agree_on_failure<InputError>(comm, Group::World, kExitBadInput, "read the adapter", [&] {
      read_adapter(o.adapter, cfg.model, cfg.lora, base_fingerprint(cfg.model), model.lora_layout(), tp_rank,
                   model.lora_params().data());
    });
  if (!o.peft.empty()) {
    RunConfig c = cfg;
    c.lora.init_from = o.peft;
    agree_on_failure<InputError>(comm, Group::World, kExitBadInput, "read the PEFT adapter", [&] {
      load_lora_init_from(c, model.lora_layout(), tp_rank, model.lora_params().data());
    });
  }
  const int V = cfg.model.vocab_size, Vl = model.dims().vocab_local, tp = model.dims().tp;
  const std::string source = !o.adapter.empty() ? ", adapter " + o.adapter
                             : !o.peft.empty()  ? ", PEFT adapter " + o.peft
                                                : ", base only";

  struct Continuation {
    std::vector<int32_t> ids;
    std::string text;
    const char* stopped = kStopMaxTokens;
    double prefill_s = 0, total_s = 0;
    size_t cache_bytes = 0;
  };
  // Continues one prompt from an empty KV cache; `stream`: world rank 0 writes each new piece
  // of text to stdout as it comes.
  auto continue_prompt = [&](const std::vector<int32_t>& prompt, bool stream) {
    Continuation c;
    const int P = static_cast<int>(prompt.size());
    const int capacity = std::min(context, P + std::max(o.max_new_tokens, 0));
    KvCache<float> cache = model.make_kv_cache(capacity);
    c.cache_bytes = cache.bytes();
    std::vector<float> local, full(static_cast<size_t>(Vl) * tp);
    const auto t0 = Clock::now();
    for (int step = 0; step < o.max_new_tokens; ++step) {
      if (cache.length == cache.capacity) {
        c.stopped = kStopContext;
        break;
      }
      if (step == 0) {
        model.extend(prompt.data(), P, cache, local);
      } else {
        model.extend(&c.ids.back(), 1, cache, local);
      }
      // Gather-from-TP-region: each rank holds a slice of the vocabulary; all need all of it.
      comm.all_gather(local.data(), Vl, full.data(), Group::TP);
      const int token = sample_token(full.data(), V, o.sampling, static_cast<uint64_t>(step));
      double range[2] = {double(token), -double(token)};  // max and -min over TP must agree
      comm.all_reduce_max(range, 2, Group::TP);
      if (range[0] != -range[1])
        throw std::runtime_error("generate: TP ranks drew different tokens at step " + std::to_string(step) +
                                 " (max id " + std::to_string(range[0]) + ", min " + std::to_string(-range[1]) + ")");
      if (step == 0) c.prefill_s = seconds_since(t0);
      if (codec.ends_generation(token) && !o.ignore_eot) {
        c.stopped = kStopEot;
        break;
      }
      c.ids.push_back(token);
      const std::string text = codec.decode(c.ids);
      const std::string piece = text.substr(std::min(c.text.size(), text.size()));
      c.text = text;
      if (out && stream) {
        std::fwrite(piece.data(), 1, piece.size(), stdout);
        std::fflush(stdout);
      }
      bool hit = false;
      for (const std::string& s : stops)
        hit = hit || (c.text.size() >= s.size() && c.text.compare(c.text.size() - s.size(), s.size(), s) == 0);
      if (hit) {
        c.stopped = kStopString;
        break;
      }
    }
    c.total_s = seconds_since(t0);
    return c;
  };

  if (eval) {
    run_eval(o, records, prompts, stops, out, source, tp, [&](size_t i) {
      Continuation c = continue_prompt(prompts[i], false);
      return std::make_pair(c.text, std::string(c.stopped));
    });
    return;
  }

  const Continuation c = continue_prompt(prompts[0], true);
  const int decoded = std::max(0, static_cast<int>(c.ids.size()) - 1);
  const double decode_tps = decoded > 0 ? decoded / std::max(c.total_s - c.prefill_s, 1e-9) : 0;
  if (!out) return;
  if (!c.text.empty() && c.text.back() != '\n') std::printf("\n");
  std::fflush(stdout);
  std::fprintf(stderr,
               "generate: %zu new tokens (%s; stopped: %s) after a %zu-token prompt, tp %d%s: prefill %.3f s, "
               "decode %.1f tokens/s, KV cache %s per rank\n",
               c.ids.size(), o.sampling.describe().c_str(), c.stopped, prompts[0].size(), tp, source.c_str(),
               c.prefill_s, decode_tps, human_bytes(c.cache_bytes).c_str());
  if (o.json.empty()) return;
  nlohmann::json j = {{"prompt_ids", prompts[0]}, {"ids", c.ids},          {"completion", c.text},
                      {"stopped", c.stopped},     {"sampling", o.sampling.describe()}, {"tp", tp},
                      {"prefill_s", c.prefill_s}, {"decode_tokens_per_s", decode_tps}, {"kv_cache_bytes", c.cache_bytes}};
  std::ofstream f(o.json, std::ios::app);
  f << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  if (!f) throw std::runtime_error(o.json + ": cannot append the JSON record");
}

}  // namespace lora
