#include "trainer/generate/generate.h"

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
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

}  // namespace

void run_generate(const RunConfig& cfg, Communicator& comm, const GenerateOptions& o) {
  const bool out = comm.rank(Group::World) == 0;
  const Codec codec = make_codec(cfg, o);
  std::vector<int32_t> prompt;
  try {
    prompt = codec.encode(read_prompt(o));
  } catch (const std::invalid_argument& e) {  // the GPT-2 tokenizer takes UTF-8 text only
    if (o.prompt_file.empty()) throw ConfigError("generate: --prompt: " + std::string(e.what()));
    throw InputError(prompt_source(o) + ": " + e.what());
  }
  for (size_t i = 0; i < prompt.size(); ++i)
    if (prompt[i] >= cfg.model.vocab_size)  // only bytes can be: a larger BPE vocabulary is refused above
      throw ConfigError("generate: " + prompt_source(o) + ": byte " + std::to_string(prompt[i]) + " at offset " +
                        std::to_string(i) + " is not a token of model.vocab_size " +
                        std::to_string(cfg.model.vocab_size) + " (" + cfg.source_path + ")");
  if (prompt.empty()) {
    if (!codec.eot()) throw ConfigError("generate: the prompt is empty");
    prompt.push_back(*codec.eot());  // GPT-2 starts unconditional samples at <|endoftext|>
  }
  const int context = cfg.model.context, P = static_cast<int>(prompt.size());
  if (P >= context)
    throw ConfigError("generate: the prompt is " + std::to_string(P) + " tokens; model.context " +
                      std::to_string(context) + " leaves no room for a new one");

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

  const int capacity = std::min(context, P + std::max(o.max_new_tokens, 0));
  KvCache<float> cache = model.make_kv_cache(capacity);
  const int V = cfg.model.vocab_size, Vl = model.dims().vocab_local, tp = model.dims().tp;
  std::vector<float> local, full(static_cast<size_t>(Vl) * tp);
  std::vector<int32_t> generated;
  std::string completion;
  const char* stopped = kStopMaxTokens;
  const auto t0 = Clock::now();
  double prefill_s = 0;
  for (int step = 0; step < o.max_new_tokens; ++step) {
    if (cache.length == cache.capacity) {
      stopped = kStopContext;
      break;
    }
    if (step == 0) {
      model.extend(prompt.data(), P, cache, local);
    } else {
      model.extend(&generated.back(), 1, cache, local);
    }
    // Gather-from-TP-region: each rank holds a slice of the vocabulary; all need all of it.
    comm.all_gather(local.data(), Vl, full.data(), Group::TP);
    const int token = sample_token(full.data(), V, o.sampling, static_cast<uint64_t>(step));
    double range[2] = {double(token), -double(token)};  // max and -min over TP must agree
    comm.all_reduce_max(range, 2, Group::TP);
    if (range[0] != -range[1])
      throw std::runtime_error("generate: TP ranks drew different tokens at step " + std::to_string(step) +
                               " (max id " + std::to_string(range[0]) + ", min " + std::to_string(-range[1]) + ")");
    if (step == 0) prefill_s = seconds_since(t0);
    if (codec.ends_generation(token) && !o.ignore_eot) {
      stopped = kStopEot;
      break;
    }
    generated.push_back(token);
    const std::string text = codec.decode(generated);
    const std::string piece = text.substr(std::min(completion.size(), text.size()));
    completion = text;
    if (out) {
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::fflush(stdout);
    }
    bool hit = false;
    for (const std::string& s : o.stop)
      hit = hit || (completion.size() >= s.size() && completion.compare(completion.size() - s.size(), s.size(), s) == 0);
    if (hit) {
      stopped = kStopString;
      break;
    }
  }
  const double total_s = seconds_since(t0);
  const int decoded = std::max(0, static_cast<int>(generated.size()) - 1);
  const double decode_tps = decoded > 0 ? decoded / std::max(total_s - prefill_s, 1e-9) : 0;
  if (!out) return;
  const std::string source = !o.adapter.empty() ? ", adapter " + o.adapter
                             : !o.peft.empty()  ? ", PEFT adapter " + o.peft
                                                : ", base only";
  if (!completion.empty() && completion.back() != '\n') std::printf("\n");
  std::fflush(stdout);
  std::fprintf(stderr,
               "generate: %zu new tokens (%s; stopped: %s) after a %d-token prompt, tp %d%s: prefill %.3f s, "
               "decode %.1f tokens/s, KV cache %s per rank\n",
               generated.size(), o.sampling.describe().c_str(), stopped, P, tp,
               source.c_str(),
               prefill_s, decode_tps, human_bytes(cache.bytes()).c_str());
  if (o.json.empty()) return;
  nlohmann::json j = {{"prompt_ids", prompt},   {"ids", generated},         {"completion", completion},
                      {"stopped", stopped},     {"sampling", o.sampling.describe()}, {"tp", tp},
                      {"prefill_s", prefill_s}, {"decode_tokens_per_s", decode_tps}, {"kv_cache_bytes", cache.bytes()}};
  std::ofstream f(o.json, std::ios::app);
  f << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  if (!f) throw std::runtime_error(o.json + ": cannot append the JSON record");
}

}  // namespace lora
