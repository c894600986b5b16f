// Any model folder's tokenizer (io/tokenizer.h: tokenizer.json, tokenizer.model or GPT-2's
// files) over a JSON list of strings, for tests/tokenizer/*.py:
//   tokenize_driver FOLDER corpus.json out.json
// out.json: {"describe", "vocab_size", "eos", "bos" (null: none),
//            "encode": [[ids]...], "encode_with_special": [[ids]...], "starts": [[offsets]...],
//            "decode": [text of encode_with_special...], "decode_plain": [text of encode...]}
// Decoded texts that are not valid UTF-8 are written with U+FFFD in place of the bad bytes.
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "io/tokenizer.h"

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s FOLDER corpus.json out.json\n", argv[0]);
    return 2;
  }
  try {
    const auto tok = lora::load_tokenizer(argv[1]);
    const nlohmann::json corpus = nlohmann::json::parse(std::ifstream(argv[2]));
    nlohmann::json out = {{"describe", tok->describe()}, {"vocab_size", tok->vocab_size()}, {"eos", tok->eos()},
                          {"bos", tok->bos() ? nlohmann::json(*tok->bos()) : nlohmann::json()}};
    for (const char* k : {"encode", "encode_with_special", "starts", "decode", "decode_plain"}) out[k] = nlohmann::json::array();
    for (const auto& s : corpus) {
      const std::string text = s.get<std::string>();
      const std::vector<uint32_t> plain = tok->encode(text);
      const lora::TokenOffsets special = tok->encode_with_offsets(text);
      out["encode"].push_back(plain);
      out["encode_with_special"].push_back(special.ids);
      out["starts"].push_back(special.starts);
      out["decode"].push_back(tok->decode(special.ids));
      out["decode_plain"].push_back(tok->decode(plain));
    }
    std::ofstream(argv[3]) << out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tokenize_driver: %s\n", e.what());
    return 1;
  }
  return 0;
}
