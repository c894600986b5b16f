// config.json of Hugging Face Llama-family folders (io/hf_config.h, read_hf_llama_config): the
// shapes of real checkpoints' configs (Llama 3.1 8B, Llama 3.2 1B, Mistral 7B v0.1, Qwen2.5
// 0.5B, a transformers v5 rope_parameters form) read with transformers' defaults, and every
// refusal naming the file and the key.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "io/hf_config.h"
#include "io/input_error.h"
#include "unique_temp_path.h"

namespace lora::test {
namespace {

namespace fs = std::filesystem;

// The keys of meta-llama/Llama-3.1-8B's config.json that the reader uses, as published.
nlohmann::json llama31_8b() {
  return nlohmann::json::parse(R"({
    "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
    "bos_token_id": 128000, "eos_token_id": 128001, "hidden_act": "silu", "hidden_size": 4096,
    "initializer_range": 0.02, "intermediate_size": 14336, "max_position_embeddings": 131072,
    "mlp_bias": false, "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 32,
    "num_key_value_heads": 8, "pretraining_tp": 1, "rms_norm_eps": 1e-05,
    "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "rope_theta": 500000.0, "tie_word_embeddings": false, "torch_dtype": "bfloat16", "vocab_size": 128256})");
}

class HfLlamaConfig : public ::testing::Test {
 protected:
  std::string write(const nlohmann::json& j) {
    dir_ = unique_temp_path(std::string("llama_cfg_") + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
    std::ofstream(dir_ / "config.json") << j.dump(1);
    return dir_.string();
  }
  // The message read_hf_llama_config throws for `j`; fails the test when it accepts it.
  std::string refusal(const nlohmann::json& j) {
    const std::string dir = write(j);
    try {
      read_hf_llama_config(dir);
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find((fs::path(dir) / "config.json").string() + ": "), std::string::npos) << e.what();
      return e.what();
    }
    ADD_FAILURE() << "accepted " << j.dump();
    return "";
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(HfLlamaConfig, Llama31With8KvHeadsAndLlama3Scaling) {
  const HfLlamaShape s = read_hf_llama_config(write(llama31_8b()));
  EXPECT_EQ(s.model_type, "llama");
  EXPECT_EQ(s.n_layer, 32);
  EXPECT_EQ(s.d_model, 4096);
  EXPECT_EQ(s.n_head, 32);
  EXPECT_EQ(s.n_kv_head, 8);
  EXPECT_EQ(s.head_dim, 128);
  EXPECT_EQ(s.ffn, 14336);
  EXPECT_EQ(s.vocab_size, 128256);
  EXPECT_EQ(s.context, 131072);
  EXPECT_FLOAT_EQ(s.rms_norm_eps, 1e-5f);
  EXPECT_EQ(s.rope_theta, 500000);
  EXPECT_EQ(s.rope_scaling.factor, 8);
  EXPECT_EQ(s.rope_scaling.low_freq_factor, 1);
  EXPECT_EQ(s.rope_scaling.high_freq_factor, 4);
  EXPECT_EQ(s.rope_scaling.original_max_position_embeddings, 8192);
  EXPECT_FALSE(s.tie_word_embeddings);
  EXPECT_FALSE(s.qkv_bias || s.o_bias || s.mlp_bias);
  EXPECT_EQ(s.sliding_window, 0);
}

TEST_F(HfLlamaConfig, TiedLlama32OlderTypeKeyAndV5RopeParameters) {
  nlohmann::json j = llama31_8b();  // Llama-3.2-1B: 16 layers of 2048, 32 heads of 64, 8 KV heads, tied
  j.update({{"num_hidden_layers", 16}, {"hidden_size", 2048}, {"intermediate_size", 8192}, {"head_dim", 64},
            {"tie_word_embeddings", true}, {"rope_scaling", {{"factor", 32.0}, {"low_freq_factor", 1.0},
            {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 8192}, {"type", "llama3"}}}});
  HfLlamaShape s = read_hf_llama_config(write(j));
  EXPECT_TRUE(s.tie_word_embeddings);
  EXPECT_EQ(s.head_dim, 64);
  EXPECT_EQ(s.rope_scaling.factor, 32);
  // transformers v5: rope_parameters holds the theta and the scaling together.
  j.erase("rope_scaling");
  j.erase("rope_theta");
  j["rope_parameters"] = {{"rope_type", "llama3"}, {"rope_theta", 500000.0}, {"factor", 32.0}, {"low_freq_factor", 1.0},
                          {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 8192}};
  s = read_hf_llama_config(write(j));
  EXPECT_EQ(s.rope_theta, 500000);
  EXPECT_EQ(s.rope_scaling.factor, 32);
  j["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 10000.0}};
  s = read_hf_llama_config(write(j));
  EXPECT_EQ(s.rope_theta, 10000);
  EXPECT_EQ(s.rope_scaling.factor, 0);
}

TEST_F(HfLlamaConfig, MistralWindowAndQwen2BiasesAndDefaults) {
  const nlohmann::json mistral = nlohmann::json::parse(R"({"model_type": "mistral", "hidden_act": "silu",
    "hidden_size": 4096, "intermediate_size": 14336, "max_position_embeddings": 32768, "num_attention_heads": 32,
    "num_hidden_layers": 32, "num_key_value_heads": 8, "rms_norm_eps": 1e-05, "rope_theta": 10000.0,
    "sliding_window": 4096, "tie_word_embeddings": false, "vocab_size": 32000})");
  HfLlamaShape s = read_hf_llama_config(write(mistral));
  EXPECT_EQ(s.sliding_window, 4096);
  EXPECT_EQ(s.rope_scaling.factor, 0);
  // Qwen2.5-0.5B: q, k, v biases though config.json does not say so; 14 heads, 2 KV heads, tied.
  const nlohmann::json qwen = nlohmann::json::parse(R"({"model_type": "qwen2", "hidden_act": "silu",
    "hidden_size": 896, "intermediate_size": 4864, "max_position_embeddings": 32768, "max_window_layers": 21,
    "num_attention_heads": 14, "num_hidden_layers": 24, "num_key_value_heads": 2, "rms_norm_eps": 1e-06,
    "rope_theta": 1000000.0, "sliding_window": 32768, "tie_word_embeddings": true, "use_sliding_window": false,
    "vocab_size": 151936, "attention_dropout": 0.0})");
  s = read_hf_llama_config(write(qwen));
  EXPECT_TRUE(s.qkv_bias);
  EXPECT_FALSE(s.o_bias || s.mlp_bias);
  EXPECT_EQ(s.head_dim, 64);
  EXPECT_EQ(s.sliding_window, 0);  // Qwen2's window is off (use_sliding_window false)
  // transformers' defaults: n_kv_head = n_head, eps 1e-6, theta 10000, untied, no biases.
  nlohmann::json bare = {{"model_type", "llama"}, {"hidden_size", 64}, {"intermediate_size", 160},
                         {"max_position_embeddings", 128}, {"num_attention_heads", 4}, {"num_hidden_layers", 2},
                         {"vocab_size", 300}};
  s = read_hf_llama_config(write(bare));
  EXPECT_EQ(s.n_kv_head, 4);
  EXPECT_FLOAT_EQ(s.rms_norm_eps, 1e-6f);
  EXPECT_EQ(s.rope_theta, 10000);
  EXPECT_FALSE(s.tie_word_embeddings || s.qkv_bias || s.o_bias || s.mlp_bias);
}

TEST_F(HfLlamaConfig, RefusalsNameTheKey) {
  const auto with = [](std::initializer_list<std::pair<const char*, nlohmann::json>> changes) {
    nlohmann::json j = llama31_8b();
    for (const auto& [k, v] : changes) {
      if (v.is_discarded()) j.erase(k);
      else j[k] = v;
    }
    return j;
  };
  const nlohmann::json gone = nlohmann::json(nlohmann::json::value_t::discarded);
  const struct {
    nlohmann::json config;
    const char* expect;
  } cases[] = {
      {with({{"num_key_value_heads", 5}}), "num_key_value_heads 5 does not divide num_attention_heads 32"},
      {with({{"intermediate_size", gone}}), "no 'intermediate_size' (a Llama-family config.json has it)"},
      {with({{"hidden_size", -4096}}), "hidden_size must be a positive 32-bit integer (got -4096)"},
      {with({{"hidden_act", "gelu"}}), "hidden_act is \"gelu\"; lora_dist computes \"silu\""},
      {with({{"hidden_size", 4100}}), "hidden_size 4100 is not divisible by num_attention_heads 32 and there is no head_dim"},
      {with({{"head_dim", 65}}), "head_dim 65 is odd"},
      {with({{"rms_norm_eps", 0}}), "rms_norm_eps must be a number in (0, 1) (got 0)"},
      {with({{"rope_scaling", {{"rope_type", "yarn"}, {"factor", 4.0}}}}), "rope_scaling: rope_type \"yarn\" is not computed"},
      {with({{"rope_scaling", {{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 1.0},
                               {"high_freq_factor", 4.0}}}}),
       "rope_scaling: no 'original_max_position_embeddings' (llama3 scaling needs it)"},
      {with({{"rope_scaling", {{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 4.0},
                               {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 8192}}}}),
       "rope_scaling: low_freq_factor must be below high_freq_factor (got 4 and 4)"},
      {with({{"rope_scaling", "llama3"}}), "rope_scaling must be an object"},
      {with({{"tie_word_embeddings", "yes"}}), "tie_word_embeddings must be true or false"},
      {with({{"attention_dropout", 0.1}}), "attention_dropout is 0.1"},
      {with({{"model_type", "qwen3"}}), "model_type qwen3: its per-head q_norm/k_norm are not built yet"},
      {with({{"model_type", "gpt2"}}), "model_type \"gpt2\" is not a Llama-family model"},
      {with({{"model_type", gone}}), "no 'model_type' string"},
  };
  for (const auto& c : cases) {
    const std::string what = refusal(c.config);
    EXPECT_NE(what.find(c.expect), std::string::npos) << "expected '" << c.expect << "' in: " << what;
  }
  // Not JSON at all, and no file.
  const std::string dir = write(llama31_8b());
  std::ofstream(fs::path(dir) / "config.json") << "{\"model_type\": ";
  EXPECT_THROW(read_hf_llama_config(dir), InputError);
  fs::remove(fs::path(dir) / "config.json");
  EXPECT_THROW(read_hf_llama_config(dir), InputError);
}

}  // namespace
}  // namespace lora::test
