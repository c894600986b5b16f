// prepare's chat rendering (trainer/prepare/prepare.h tokenize_chat) over a JSON list of
// conversations, for tests/tokenizer/chat_template_test.py:
//   chat_render_driver FOLDER cases.json out.json
// cases.json: [{"messages": [{"role", "content"}...], "add_generation_prompt": bool}...]
// out.json: [{"text", "assistant": [[begin, end]...], "ids", "scored"} or {"error": message}...]
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "io/tokenizer_config.h"
#include "trainer/prepare/prepare.h"

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s FOLDER cases.json out.json\n", argv[0]);
    return 2;
  }
  try {
    const auto tok = lora::load_tokenizer(argv[1]);
    const lora::ChatTemplate t = lora::recognise_chat_template(lora::read_tokenizer_config(argv[1]));
    nlohmann::json out = nlohmann::json::array();
    for (const auto& c : nlohmann::json::parse(std::ifstream(argv[2]))) {
      std::vector<lora::ChatMessage> messages;
      for (const auto& m : c["messages"]) messages.push_back({m["role"].get<std::string>(), m["content"].get<std::string>()});
      try {
        const lora::ChatTokens r = lora::tokenize_chat(*tok, t, messages, c["add_generation_prompt"].get<bool>());
        out.push_back({{"text", r.rendered.text}, {"assistant", r.rendered.assistant}, {"ids", r.ids}, {"scored", r.scored}});
      } catch (const std::invalid_argument& e) {
        out.push_back({{"error", e.what()}});
      }
    }
    std::ofstream(argv[3]) << out.dump();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "chat_render_driver: %s\n", e.what());
    return 1;
  }
  return 0;
}
