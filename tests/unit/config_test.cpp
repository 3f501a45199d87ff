// tests/unit/config_test.cpp — config.json parsing against the published configs of real models
// (TinyLlama, Llama-2/3/3.2, Mistral, Qwen2.5) and the bundled demo, transformers-5 keys, the
// transformers class defaults, and every validation error naming the file and the key.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "qforge/model_config.h"
#include "qforge/status.h"
#include "test_support.h"

namespace qforge {
namespace {

using nlohmann::json;

// Published config.json files (values as on the Hugging Face hub).
const char* kTinyLlamaChat = R"({
  "architectures": ["LlamaForCausalLM"], "attention_bias": false, "bos_token_id": 1, "eos_token_id": 2,
  "hidden_act": "silu", "hidden_size": 2048, "initializer_range": 0.02, "intermediate_size": 5632,
  "max_position_embeddings": 2048, "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 22,
  "num_key_value_heads": 4, "pretraining_tp": 1, "rms_norm_eps": 1e-05, "rope_scaling": null, "rope_theta": 10000.0,
  "tie_word_embeddings": false, "torch_dtype": "bfloat16", "transformers_version": "4.35.0", "use_cache": true,
  "vocab_size": 32000})";

const char* kLlama2_7b = R"({
  "architectures": ["LlamaForCausalLM"], "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu",
  "hidden_size": 4096, "initializer_range": 0.02, "intermediate_size": 11008, "max_position_embeddings": 4096,
  "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 32,
  "pretraining_tp": 1, "rms_norm_eps": 1e-05, "rope_scaling": null, "tie_word_embeddings": false,
  "torch_dtype": "float16", "transformers_version": "4.31.0.dev0", "use_cache": true, "vocab_size": 32000})";

const char* kLlama3_8b = R"({
  "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
  "bos_token_id": 128000, "eos_token_id": 128001, "hidden_act": "silu", "hidden_size": 4096,
  "initializer_range": 0.02, "intermediate_size": 14336, "max_position_embeddings": 8192, "model_type": "llama",
  "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8, "pretraining_tp": 1,
  "rms_norm_eps": 1e-05, "rope_scaling": null, "rope_theta": 500000.0, "tie_word_embeddings": false,
  "torch_dtype": "bfloat16", "transformers_version": "4.40.0.dev0", "use_cache": true, "vocab_size": 128256})";

const char* kLlama32_1b = R"({
  "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
  "bos_token_id": 128000, "eos_token_id": 128001, "head_dim": 64, "hidden_act": "silu", "hidden_size": 2048,
  "initializer_range": 0.02, "intermediate_size": 8192, "max_position_embeddings": 131072, "mlp_bias": false,
  "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 16, "num_key_value_heads": 8,
  "pretraining_tp": 1, "rms_norm_eps": 1e-05,
  "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                   "original_max_position_embeddings": 8192, "rope_type": "llama3"},
  "rope_theta": 500000.0, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
  "transformers_version": "4.45.0.dev0", "use_cache": true, "vocab_size": 128256})";

const char* kMistral7b = R"({
  "architectures": ["MistralForCausalLM"], "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu",
  "hidden_size": 4096, "initializer_range": 0.02, "intermediate_size": 14336, "max_position_embeddings": 32768,
  "model_type": "mistral", "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
  "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "sliding_window": 4096, "tie_word_embeddings": false,
  "torch_dtype": "bfloat16", "transformers_version": "4.34.0.dev0", "use_cache": true, "vocab_size": 32000})";

const char* kQwen25_05b = R"({
  "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
  "eos_token_id": 151643, "hidden_act": "silu", "hidden_size": 896, "initializer_range": 0.02,
  "intermediate_size": 4864, "max_position_embeddings": 32768, "max_window_layers": 24, "model_type": "qwen2",
  "num_attention_heads": 14, "num_hidden_layers": 24, "num_key_value_heads": 2, "rms_norm_eps": 1e-06,
  "rope_theta": 1000000.0, "sliding_window": 32768, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
  "transformers_version": "4.40.1", "use_cache": true, "use_sliding_window": false, "vocab_size": 151936,
  "use_mrope": false})";

ModelConfig parse(const std::string& text) { return parse_model_config(text, "config.json"); }

// `base` with `patch` merged in (null values in the patch remove keys: JSON merge patch).
std::string patched(const char* base, const json& patch) {
  json j = json::parse(base);
  j.merge_patch(patch);
  return j.dump();
}
std::string with_null(const char* base, const std::string& key) {
  json j = json::parse(base);
  j[key] = nullptr;
  return j.dump();
}

void expect_error(const std::string& text, std::initializer_list<std::string> needles) {
  try {
    parse(text);
    ADD_FAILURE() << "no error for " << text.substr(0, 200);
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_EQ(msg.rfind("config.json: ", 0), 0u) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    for (const auto& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << "message: " << msg << "\nexpected: " << n;
  }
}

TEST(ModelConfig, TinyLlamaChat) {
  auto c = parse(kTinyLlamaChat);
  EXPECT_EQ(c.architecture, "LlamaForCausalLM");
  EXPECT_EQ(c.model_type, "llama");
  EXPECT_EQ(c.vocab_size, 32000);
  EXPECT_EQ(c.hidden_size, 2048);
  EXPECT_EQ(c.intermediate_size, 5632);
  EXPECT_EQ(c.num_hidden_layers, 22);
  EXPECT_EQ(c.num_attention_heads, 32);
  EXPECT_EQ(c.num_key_value_heads, 4);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.q_dim(), 2048);
  EXPECT_EQ(c.kv_dim(), 256);
  EXPECT_EQ(c.max_position_embeddings, 2048);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_DOUBLE_EQ(c.rope_theta, 10000.0);
  EXPECT_EQ(c.rope_scaling.type, RopeType::Default);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_FALSE(c.attention_bias);
  EXPECT_FALSE(c.o_proj_bias);
  EXPECT_FALSE(c.mlp_bias);
  EXPECT_EQ(c.torch_dtype, DType::BF16);
  EXPECT_FALSE(c.sliding_window.has_value());
  EXPECT_EQ(c.bos_token_id, 1);
  EXPECT_EQ(c.eos_token_ids, std::vector<int64_t>{2});
  EXPECT_TRUE(c.quantization_config_json.empty());
}

TEST(ModelConfig, Llama2_7bUsesDefaultRopeTheta) {
  auto c = parse(kLlama2_7b);
  EXPECT_EQ(c.num_key_value_heads, 32);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.intermediate_size, 11008);
  EXPECT_EQ(c.max_position_embeddings, 4096);
  EXPECT_DOUBLE_EQ(c.rope_theta, 10000.0);  // absent from the file: LlamaConfig default
  EXPECT_EQ(c.torch_dtype, DType::F16);
  EXPECT_FALSE(c.attention_bias);  // absent: default false
}

TEST(ModelConfig, Llama3_8b) {
  auto c = parse(kLlama3_8b);
  EXPECT_EQ(c.vocab_size, 128256);
  EXPECT_EQ(c.num_key_value_heads, 8);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.kv_dim(), 1024);
  EXPECT_DOUBLE_EQ(c.rope_theta, 500000.0);
  EXPECT_EQ(c.rope_scaling.type, RopeType::Default);
  EXPECT_EQ(c.bos_token_id, 128000);
  EXPECT_EQ(c.eos_token_ids, std::vector<int64_t>{128001});
}

TEST(ModelConfig, Llama32_1bLlama3RopeAndTied) {
  auto c = parse(kLlama32_1b);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.num_hidden_layers, 16);
  EXPECT_EQ(c.max_position_embeddings, 131072);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.rope_scaling.type, RopeType::Llama3);
  EXPECT_DOUBLE_EQ(c.rope_scaling.factor, 32.0);
  EXPECT_DOUBLE_EQ(c.rope_scaling.low_freq_factor, 1.0);
  EXPECT_DOUBLE_EQ(c.rope_scaling.high_freq_factor, 4.0);
  EXPECT_EQ(c.rope_scaling.original_max_position_embeddings, 8192);
  EXPECT_DOUBLE_EQ(c.rope_theta, 500000.0);
  // The Instruct variant lists several end tokens.
  auto inst = parse(patched(kLlama32_1b, {{"eos_token_id", {128001, 128008, 128009}}}));
  EXPECT_EQ(inst.eos_token_ids, (std::vector<int64_t>{128001, 128008, 128009}));
}

TEST(ModelConfig, Mistral7b) {
  auto c = parse(kMistral7b);
  EXPECT_EQ(c.architecture, "MistralForCausalLM");
  EXPECT_EQ(c.model_type, "mistral");
  EXPECT_EQ(c.intermediate_size, 14336);
  EXPECT_EQ(c.num_key_value_heads, 8);
  EXPECT_EQ(c.max_position_embeddings, 32768);
  ASSERT_TRUE(c.sliding_window.has_value());
  EXPECT_EQ(*c.sliding_window, 4096);
  EXPECT_TRUE(c.layer_uses_sliding_window(0));
  EXPECT_TRUE(c.layer_uses_sliding_window(31));
  EXPECT_FALSE(c.attention_bias);
  EXPECT_FALSE(c.tie_word_embeddings);
  // Mistral-7B-v0.2 and later: "sliding_window": null means full attention.
  EXPECT_FALSE(parse(with_null(kMistral7b, "sliding_window")).sliding_window.has_value());
  // Mistral ignores attention_bias (its attention has no biases).
  EXPECT_FALSE(parse(patched(kMistral7b, {{"attention_bias", true}})).attention_bias);
}

TEST(ModelConfig, Qwen25_05bTiedWithQkvBias) {
  auto c = parse(kQwen25_05b);
  EXPECT_EQ(c.architecture, "Qwen2ForCausalLM");
  EXPECT_EQ(c.vocab_size, 151936);
  EXPECT_EQ(c.hidden_size, 896);
  EXPECT_EQ(c.intermediate_size, 4864);
  EXPECT_EQ(c.num_attention_heads, 14);
  EXPECT_EQ(c.num_key_value_heads, 2);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-6);
  EXPECT_DOUBLE_EQ(c.rope_theta, 1e6);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_TRUE(c.attention_bias);
  EXPECT_FALSE(c.o_proj_bias);
  EXPECT_FALSE(c.mlp_bias);
  EXPECT_FALSE(c.sliding_window.has_value());  // use_sliding_window: false
  EXPECT_EQ(c.bos_token_id, 151643);
  EXPECT_EQ(c.eos_token_ids, std::vector<int64_t>{151643});
  // With use_sliding_window the window applies from max_window_layers on.
  auto sw = parse(patched(kQwen25_05b, {{"use_sliding_window", true}, {"max_window_layers", 21}}));
  ASSERT_TRUE(sw.sliding_window.has_value());
  EXPECT_EQ(*sw.sliding_window, 32768);
  EXPECT_FALSE(sw.layer_uses_sliding_window(20));
  EXPECT_TRUE(sw.layer_uses_sliding_window(21));
}

TEST(ModelConfig, BundledDemoModelTransformers5Keys) {
  auto c = load_model_config(test::demo_model_dir() / "config.json");
  EXPECT_EQ(c.architecture, "LlamaForCausalLM");
  EXPECT_EQ(c.hidden_size, 288);
  EXPECT_EQ(c.head_dim, 48);
  EXPECT_EQ(c.num_attention_heads, 6);
  EXPECT_EQ(c.num_key_value_heads, 2);
  EXPECT_EQ(c.num_hidden_layers, 6);
  EXPECT_EQ(c.intermediate_size, 768);
  EXPECT_EQ(c.vocab_size, 32000);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.torch_dtype, DType::BF16);
  EXPECT_DOUBLE_EQ(c.rope_theta, 10000.0);
  EXPECT_EQ(c.rope_scaling.type, RopeType::Default);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-5);
}

TEST(ModelConfig, Transformers5RopeParameters) {
  // Llama 3.2 as transformers 5 writes it: rope_parameters holds theta and scaling; "dtype".
  json j = json::parse(kLlama32_1b);
  j.erase("rope_scaling");
  j.erase("rope_theta");
  j.erase("torch_dtype");
  j["dtype"] = "float32";
  j["rope_parameters"] = {{"rope_type", "llama3"}, {"rope_theta", 500000.0}, {"factor", 32.0},
                          {"low_freq_factor", 1.0}, {"high_freq_factor", 4.0},
                          {"original_max_position_embeddings", 8192}};
  auto c = parse(j.dump());
  EXPECT_EQ(c.rope_scaling.type, RopeType::Llama3);
  EXPECT_DOUBLE_EQ(c.rope_theta, 500000.0);
  EXPECT_DOUBLE_EQ(c.rope_scaling.factor, 32.0);
  EXPECT_EQ(c.rope_scaling.original_max_position_embeddings, 8192);
  EXPECT_EQ(c.torch_dtype, DType::F32);
  // rope_parameters wins over a stale top-level rope_theta.
  j["rope_theta"] = 10000.0;
  EXPECT_DOUBLE_EQ(parse(j.dump()).rope_theta, 500000.0);
  // Qwen2 in transformers 5 spells the sliding layers out.
  json q = json::parse(kQwen25_05b);
  q["use_sliding_window"] = true;
  q["num_hidden_layers"] = 4;
  q["layer_types"] = {"full_attention", "full_attention", "sliding_attention", "sliding_attention"};
  auto qc = parse(q.dump());
  EXPECT_EQ(qc.sliding_window_first_layer, 2);
  EXPECT_FALSE(qc.layer_uses_sliding_window(1));
  EXPECT_TRUE(qc.layer_uses_sliding_window(2));
  q["layer_types"] = {"sliding_attention", "full_attention", "sliding_attention", "full_attention"};
  expect_error(q.dump(), {"'layer_types'", "unsupported pattern"});
}

TEST(ModelConfig, LinearAndLegacyRopeScaling) {
  auto c = parse(patched(kTinyLlamaChat, {{"rope_scaling", {{"type", "linear"}, {"factor", 4.0}}}}));
  EXPECT_EQ(c.rope_scaling.type, RopeType::Linear);
  EXPECT_DOUBLE_EQ(c.rope_scaling.factor, 4.0);
  EXPECT_EQ(parse(patched(kTinyLlamaChat, {{"rope_scaling", {{"rope_type", "default"}}}})).rope_scaling.type,
            RopeType::Default);
  expect_error(patched(kTinyLlamaChat, {{"rope_scaling", {{"type", "yarn"}, {"factor", 4.0}}}}),
               {"rope type 'yarn'", "rope_scaling", "supported: default, linear, llama3"});
  expect_error(patched(kTinyLlamaChat, {{"rope_scaling", {{"type", "dynamic"}, {"factor", 2.0}}}}), {"'dynamic'"});
  expect_error(patched(kTinyLlamaChat, {{"rope_scaling", {{"type", "linear"}}}}), {"'rope_scaling.factor'", "required"});
  expect_error(patched(kTinyLlamaChat, {{"rope_scaling", {{"type", "linear"}, {"factor", -1}}}}),
               {"'rope_scaling.factor'", "positive"});
  expect_error(patched(kTinyLlamaChat, {{"rope_scaling", "linear"}}), {"'rope_scaling'", "object"});
  json l3 = json::parse(kLlama32_1b);
  l3["rope_scaling"].erase("original_max_position_embeddings");
  expect_error(l3.dump(), {"'rope_scaling.original_max_position_embeddings'", "required"});
  l3 = json::parse(kLlama32_1b);
  l3["rope_scaling"]["high_freq_factor"] = 1.0;
  expect_error(l3.dump(), {"'rope_scaling.high_freq_factor'"});
}

TEST(ModelConfig, DefaultsOfTheTransformersClasses) {
  // A minimal file: everything else from LlamaConfig / MistralConfig / Qwen2Config.
  auto l = parse(R"({"architectures": ["LlamaForCausalLM"]})");
  EXPECT_EQ(l.vocab_size, 32000);
  EXPECT_EQ(l.hidden_size, 4096);
  EXPECT_EQ(l.intermediate_size, 11008);
  EXPECT_EQ(l.num_key_value_heads, 32);
  EXPECT_EQ(l.max_position_embeddings, 2048);
  EXPECT_DOUBLE_EQ(l.rms_norm_eps, 1e-6);
  EXPECT_EQ(l.bos_token_id, 1);
  EXPECT_EQ(l.eos_token_ids, std::vector<int64_t>{2});
  EXPECT_FALSE(l.torch_dtype.has_value());
  auto m = parse(R"({"architectures": ["MistralForCausalLM"]})");
  EXPECT_EQ(m.num_key_value_heads, 8);
  EXPECT_EQ(m.intermediate_size, 14336);
  EXPECT_EQ(m.max_position_embeddings, 131072);
  EXPECT_EQ(m.sliding_window, 4096);
  auto q = parse(R"({"architectures": ["Qwen2ForCausalLM"]})");
  EXPECT_EQ(q.vocab_size, 151936);
  EXPECT_EQ(q.intermediate_size, 22016);
  EXPECT_EQ(q.num_key_value_heads, 32);
  EXPECT_EQ(q.bos_token_id, -1);
  EXPECT_TRUE(q.eos_token_ids.empty());
  EXPECT_TRUE(q.attention_bias);
  // num_key_value_heads: null means "as many as attention heads".
  EXPECT_EQ(parse(with_null(kMistral7b, "num_key_value_heads")).num_key_value_heads, 32);
  // No architectures: model_type decides.
  EXPECT_EQ(parse(R"({"model_type": "qwen2"})").architecture, "Qwen2ForCausalLM");
  // Nulls for optional tokens, quantization_config kept verbatim.
  auto n = parse(patched(kTinyLlamaChat, {{"quantization_config", {{"quant_method", "bitsandbytes"}, {"load_in_4bit", true}}}}));
  EXPECT_EQ(json::parse(n.quantization_config_json)["quant_method"], "bitsandbytes");
  auto nt = parse(with_null(with_null(kTinyLlamaChat, "bos_token_id").c_str(), "eos_token_id"));
  EXPECT_EQ(nt.bos_token_id, -1);
  EXPECT_TRUE(nt.eos_token_ids.empty());
  EXPECT_EQ(parse(patched(kTinyLlamaChat, {{"hidden_act", "swish"}})).hidden_act, "silu");
  EXPECT_TRUE(parse(patched(kTinyLlamaChat, {{"attention_bias", true}})).o_proj_bias);
  EXPECT_TRUE(parse(patched(kTinyLlamaChat, {{"mlp_bias", true}})).mlp_bias);
}

TEST(ModelConfig, UnsupportedArchitecture) {
  expect_error(R"({"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2"})",
               {"unsupported architecture 'GPT2LMHeadModel' (supported: LlamaForCausalLM, MistralForCausalLM, "
                "Qwen2ForCausalLM)"});
  expect_error(R"({"architectures": []})", {"'architectures'"});
  expect_error(R"({"architectures": "LlamaForCausalLM"})", {"'architectures'"});
  expect_error(R"({"model_type": "gemma"})", {"model_type 'gemma'"});
  expect_error(R"({"hidden_size": 8})", {"architectures"});
}

TEST(ModelConfig, InvalidValuesNameTheKey) {
  expect_error("{\"architectures\": [", {"not valid JSON"});
  expect_error("[1]", {"expected a JSON object"});
  for (const char* key : {"vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                          "num_key_value_heads", "max_position_embeddings"}) {
    expect_error(patched(kTinyLlamaChat, {{key, 0}}), {std::string("'") + key + "'", "positive"});
    expect_error(patched(kTinyLlamaChat, {{key, -3}}), {std::string("'") + key + "'", "positive"});
    expect_error(patched(kTinyLlamaChat, {{key, "32"}}), {std::string("'") + key + "'", "integer"});
    expect_error(patched(kTinyLlamaChat, {{key, 1.5}}), {std::string("'") + key + "'", "integer"});
    expect_error(patched(kTinyLlamaChat, {{key, int64_t(1) << 40}}), {std::string("'") + key + "'", "large"});
  }
  expect_error(patched(kTinyLlamaChat, {{"num_key_value_heads", 5}}), {"'num_key_value_heads'", "divide"});
  expect_error(patched(kTinyLlamaChat, {{"hidden_size", 2050}}), {"'hidden_size'", "num_attention_heads"});
  // An explicit head_dim lifts the divisibility requirement.
  EXPECT_EQ(parse(patched(kTinyLlamaChat, {{"hidden_size", 2050}, {"head_dim", 64}})).head_dim, 64);
  expect_error(patched(kTinyLlamaChat, {{"head_dim", 0}}), {"'head_dim'", "positive"});
  expect_error(patched(kTinyLlamaChat, {{"rms_norm_eps", 0}}), {"'rms_norm_eps'", "positive"});
  expect_error(patched(kTinyLlamaChat, {{"rms_norm_eps", "1e-5"}}), {"'rms_norm_eps'", "number"});
  expect_error(patched(kTinyLlamaChat, {{"rope_theta", -1.0}}), {"'rope_theta'", "positive"});
  expect_error(patched(kTinyLlamaChat, {{"hidden_act", "gelu"}}), {"'hidden_act'", "'gelu'", "silu"});
  expect_error(patched(kTinyLlamaChat, {{"tie_word_embeddings", 1}}), {"'tie_word_embeddings'", "true or false"});
  expect_error(patched(kTinyLlamaChat, {{"torch_dtype", "float7"}}), {"'torch_dtype'", "float7"});
  expect_error(patched(kTinyLlamaChat, {{"eos_token_id", {2, "x"}}}), {"'eos_token_id'"});
  expect_error(patched(kTinyLlamaChat, {{"eos_token_id", -5}}), {"'eos_token_id'", "negative"});
  expect_error(patched(kMistral7b, {{"sliding_window", 0}}), {"'sliding_window'", "positive"});
  expect_error(patched(kTinyLlamaChat, {{"quantization_config", "nf4"}}), {"'quantization_config'"});
  // The source label is the path given to load_model_config.
  auto dir = test::temp_dir("cfg");
  std::FILE* f = std::fopen((dir / "config.json").c_str(), "w");
  std::fputs(R"({"architectures": ["BertModel"]})", f);
  std::fclose(f);
  try {
    load_model_config(dir / "config.json");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).rfind((dir / "config.json").string() + ": unsupported architecture 'BertModel'", 0), 0u)
        << e.what();
  }
  try {
    load_model_config(dir / "missing.json");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("missing.json: cannot read"), std::string::npos);
  }
}

}  // namespace
}  // namespace qforge
