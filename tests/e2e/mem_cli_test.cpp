// tests/e2e/mem_cli_test.cpp — `qforge mem` as users call it: the JSON contract on the last
// stdout line, the Llama-2-70B DGX Spark verdicts with their numbers, the demo model read from
// its config.json, the --params quick formula, the human table and one-line errors.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "test_support.h"

using qforge::test::run_qforge;

namespace {

const nlohmann::json& find_device(const nlohmann::json& j, const std::string& name) {
  for (const auto& d : j.at("devices"))
    if (d.at("name") == name) return d;
  throw std::runtime_error("no device " + name);
}

}  // namespace

TEST(MemCli, JsonContractLlama2_70B) {
  auto r = run_qforge("mem --preset Llama-2-70B --format nf4 --context 4096 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = qforge::test::last_json_line(r.out);
  for (const char* k : {"params", "weights_bytes", "kv_cache_bytes", "overhead_bytes", "total_bytes", "breakdown", "devices"})
    EXPECT_TRUE(j.contains(k)) << k;
  EXPECT_EQ(j["params"].get<int64_t>(), 68'976'648'192);
  EXPECT_EQ(j["kv_cache_bytes"].get<int64_t>(), 2LL * 80 * 8 * 128 * 4096 * 2);
  EXPECT_EQ(j["total_bytes"].get<int64_t>(),
            j["weights_bytes"].get<int64_t>() + j["kv_cache_bytes"].get<int64_t>() + j["overhead_bytes"].get<int64_t>());
  int64_t sum = 0;
  for (const auto& [k, v] : j["breakdown"].items()) sum += v.get<int64_t>();
  EXPECT_EQ(sum, j["total_bytes"].get<int64_t>());
  for (const auto& d : j["devices"]) {
    for (const char* k : {"name", "memory_bytes", "fits", "max_context"}) EXPECT_TRUE(d.contains(k)) << k;
    EXPECT_EQ(d["fits"].get<bool>(), d["total_bytes"].get<int64_t>() <= d["memory_bytes"].get<int64_t>());
  }
  const auto& spark = find_device(j, "DGX Spark 128GB");
  EXPECT_TRUE(spark["fits"].get<bool>());
  EXPECT_EQ(spark["max_context"].get<int64_t>(), 4096);  // the model's limit
  EXPECT_FALSE(find_device(j, "RTX 4090 24GB")["fits"].get<bool>());
}

TEST(MemCli, Fp16Llama2_70BDoesNotFitDgxSpark) {
  auto r = run_qforge("mem --preset Llama-2-70B --format fp16 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = qforge::test::last_json_line(r.out);
  EXPECT_EQ(j["weights_bytes"].get<int64_t>(), 2 * 68'976'648'192);
  const auto& spark = find_device(j, "DGX Spark 128GB");
  EXPECT_FALSE(spark["fits"].get<bool>());
  EXPECT_EQ(spark["max_context"].get<int64_t>(), 0);
  EXPECT_GT(spark["total_bytes"].get<int64_t>(), spark["memory_bytes"].get<int64_t>());
  EXPECT_TRUE(find_device(j, "H200 141GB")["fits"].get<bool>());
}

TEST(MemCli, DemoModelFromDirectory) {
  auto r = run_qforge("mem --model '" + qforge::test::demo_model_dir().string() + "' --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = qforge::test::last_json_line(r.out);
  EXPECT_EQ(j["params"].get<int64_t>(), 14'528'160);
  EXPECT_EQ(j["weights_bytes"].get<int64_t>(), 29'056'320);  // bf16 default
  EXPECT_EQ(j["breakdown"]["lm_head"].get<int64_t>(), 0);     // tied
  EXPECT_EQ(j["context"].get<int64_t>(), 2048);                // min(4096, max_position_embeddings)
  auto c = run_qforge("mem --config '" + (qforge::test::demo_model_dir() / "config.json").string() + "' --json");
  ASSERT_EQ(c.exit_code, 0) << c.err;
  EXPECT_EQ(qforge::test::last_json_line(c.out)["params"].get<int64_t>(), 14'528'160);
}

TEST(MemCli, Qwen2ConfigJsonMatchesPreset) {
  // Qwen2.5-0.5B-Instruct's config.json as published: tied embeddings, q/k/v biases implied by qwen2.
  const auto dir = qforge::test::temp_dir("mem-qwen");
  {
    std::ofstream f(dir / "config.json");
    f << R"({"architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
      "eos_token_id": 151645, "hidden_act": "silu", "hidden_size": 896, "initializer_range": 0.02,
      "intermediate_size": 4864, "max_position_embeddings": 32768, "max_window_layers": 21,
      "model_type": "qwen2", "num_attention_heads": 14, "num_hidden_layers": 24, "num_key_value_heads": 2,
      "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "sliding_window": 32768, "tie_word_embeddings": true,
      "torch_dtype": "bfloat16", "transformers_version": "4.43.1", "use_cache": true,
      "use_sliding_window": false, "vocab_size": 151936})";
  }
  auto r = run_qforge("mem --config '" + (dir / "config.json").string() + "' --format nf4-dq --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto p = run_qforge("mem --preset Qwen2.5-0.5B --format nf4-dq --json");
  ASSERT_EQ(p.exit_code, 0) << p.err;
  const auto a = qforge::test::last_json_line(r.out), b = qforge::test::last_json_line(p.out);
  EXPECT_EQ(a["params"].get<int64_t>(), 494'032'768);
  EXPECT_EQ(a["params_breakdown"]["attention_biases"].get<int64_t>(), 24 * (896 + 128 + 128));
  EXPECT_EQ(a["weights_bytes"], b["weights_bytes"]);
  EXPECT_EQ(a["total_bytes"], b["total_bytes"]);
}

TEST(MemCli, OptionsChangeTheNumbers) {
  auto r = run_qforge("mem --preset Llama-3.1-8B --context 32768 --batch 2 --kv-dtype fp8 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = qforge::test::last_json_line(r.out);
  EXPECT_EQ(j["kv_cache_bytes"].get<int64_t>(), 2LL * 32 * 8 * 128 * 32768 * 2 * 1);
  auto d = run_qforge("mem --preset Llama-3.1-8B --format nf4 --device-memory 8GiB --json");
  ASSERT_EQ(d.exit_code, 0) << d.err;
  const auto dj = qforge::test::last_json_line(d.out);
  const auto& custom = find_device(dj, "--device-memory 8GiB");
  EXPECT_EQ(custom["memory_bytes"].get<int64_t>(), 8LL << 30);
  EXPECT_TRUE(custom["fits"].get<bool>());
  EXPECT_GT(custom["max_context"].get<int64_t>(), 4096);
  EXPECT_LT(custom["max_context"].get<int64_t>(), 131072);
}

TEST(MemCli, QuickParams) {
  auto r = run_qforge("mem --params 70B --format bf16 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = qforge::test::last_json_line(r.out);
  EXPECT_EQ(j["params"].get<int64_t>(), 70'000'000'000);
  EXPECT_EQ(j["weights_bytes"].get<int64_t>(), 140'000'000'000);
  EXPECT_TRUE(j["quick"].get<bool>());
  auto h = run_qforge("mem --params 70B");
  ASSERT_EQ(h.exit_code, 0) << h.err;
  EXPECT_NE(h.out.find("assumptions"), std::string::npos) << h.out;
}

TEST(MemCli, HumanTable) {
  auto r = run_qforge("mem --preset Llama-2-70B");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* s : {"68,976,648,192", "fp32", "fp16/bf16", "int8", "fp8", "nf4", "nf4-dq", "nvfp4", "int4-g128",
                        "q4_0", "DGX Spark 128GB", "Laptop 64GB", "measured on H100"})
    EXPECT_NE(r.out.find(s), std::string::npos) << s;
}

TEST(MemCli, ErrorsAreOneLine) {
  const std::pair<const char*, const char*> cases[] = {
      {"mem --preset NoSuchModel", "--preset"},
      {"mem", "exactly one"},
      {"mem --preset Llama-2-7B --params 7B", "exactly one"},
      {"mem --preset Llama-2-7B --format int3", "--format"},
      {"mem --preset Llama-2-7B --kv-dtype int8", "--kv-dtype"},
      {"mem --preset Llama-2-7B --device-memory 24XB", "--device-memory"},
      {"mem --preset Llama-2-7B --context -5", "--context"},
      {"mem --preset Llama-2-7B --batch 0", "--batch"},
      {"mem --params 70X", "--params"},
      {"mem --config /nonexistent/config.json", "config.json"},
  };
  for (const auto& [args, needle] : cases) {
    auto r = run_qforge(args);
    EXPECT_NE(r.exit_code, 0) << args;
    EXPECT_NE(r.err.find(needle), std::string::npos) << args << ": " << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << args << ": " << r.err;
  }
}
