// lora_dist's GPT-2 tokenizer (io/gpt2_tokenizer.h) over a JSON list of strings, for
// tests/tokenizer/tokenizer_test.py:
//   gpt2_tokenize_driver vocab.json merges.txt corpus.json out.json
// out.json: {"encode": [[ids]...], "encode_with_special": [[ids]...], "round_trip": [bool...]}
// where round_trip[i] says decode(encode(s)) == s byte for byte.
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "io/gpt2_tokenizer.h"

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: %s vocab.json merges.txt corpus.json out.json\n", argv[0]);
    return 2;
  }
  try {
    const lora::Gpt2Tokenizer tok(argv[1], argv[2]);
    const nlohmann::json corpus = nlohmann::json::parse(std::ifstream(argv[3]));
    nlohmann::json enc = nlohmann::json::array(), special = nlohmann::json::array(), round = nlohmann::json::array();
    for (const auto& s : corpus) {
      const std::string text = s.get<std::string>();
      const std::vector<uint32_t> ids = tok.encode(text);
      enc.push_back(ids);
      special.push_back(tok.encode_with_special(text));
      round.push_back(tok.decode(ids) == text);
    }
    std::ofstream(argv[4]) << nlohmann::json{{"encode", enc}, {"encode_with_special", special}, {"round_trip", round}}.dump();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gpt2_tokenize_driver: %s\n", e.what());
    return 1;
  }
  return 0;
}
