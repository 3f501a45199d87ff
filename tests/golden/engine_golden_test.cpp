// tests/golden/engine_golden_test.cpp — the demo model against Hugging Face transformers'
// outputs (models/kjv-llama-14m.golden.json, .logits-prompt0.f32): float32 greedy tokens exact,
// logits within 2e-3, on the optimised CPU backend and the scalar reference; bf16 agreement
// measured and bounded; KV-cache decoding equal to the full forward.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "qforge/generate.h"
#include "qforge/model.h"
#include "qforge/tokenizer.h"
#include "test_support.h"

using namespace qforge;
using nlohmann::json;

namespace {

const json& golden() {
  static json g = json::parse(test::read_file(test::golden_json()));
  return g;
}

std::vector<float> golden_logits_prompt0() {
  std::string raw = test::read_file(test::source_dir() / "models" / "kjv-llama-14m.logits-prompt0.f32");
  std::vector<float> v(raw.size() / 4);
  std::memcpy(v.data(), raw.data(), v.size() * 4);
  return v;
}



}  // namespace

class GoldenFloat32 : public ::testing::TestWithParam<std::string> {};

TEST_P(GoldenFloat32, GreedyTokensExact) {
  auto m = test::load_demo(GetParam(), DType::F32);
  for (const auto& c : golden()["float32"]["generate"]) {
    auto prompt = c["prompt_ids"].get<std::vector<int32_t>>();
    auto want = c["greedy_new_ids"].get<std::vector<int32_t>>();
    EXPECT_EQ(test::greedy(*m, prompt, int(want.size())), want) << "prompt: " << c["prompt"];
  }
}

TEST_P(GoldenFloat32, LogitsPrompt0Within2e3) {
  auto m = test::load_demo(GetParam(), DType::F32);
  auto prompt = golden()["float32"]["generate"][0]["prompt_ids"].get<std::vector<int32_t>>();
  auto got = m->forward(prompt, 0, true);
  auto want = golden_logits_prompt0();
  ASSERT_EQ(got.size(), want.size());
  double mx = 0;
  for (size_t i = 0; i < got.size(); ++i) mx = std::max(mx, double(std::fabs(got[i] - want[i])));
  RecordProperty("max_abs_logit_diff", std::to_string(mx));
  EXPECT_LT(mx, 2e-3);
}

INSTANTIATE_TEST_SUITE_P(Backends, GoldenFloat32, ::testing::Values("cpu", "ref"));

TEST(Golden, LastLogitsTop10AndLogsumexp) {
  auto m = test::load_demo("cpu", DType::F32);
  for (const auto& c : golden()["float32"]["generate"]) {
    auto prompt = c["prompt_ids"].get<std::vector<int32_t>>();
    auto logits = m->forward(prompt, 0, false);
    auto ids = c["last_logits_top10_ids"].get<std::vector<int>>();
    auto vals = c["last_logits_top10"].get<std::vector<double>>();
    for (size_t i = 0; i < ids.size(); ++i) EXPECT_NEAR(logits[size_t(ids[i])], vals[i], 2e-3) << c["prompt"];
    double mx = *std::max_element(logits.begin(), logits.end()), s = 0;
    for (float v : logits) s += std::exp(double(v) - mx);
    EXPECT_NEAR(mx + std::log(s), c["last_logits_logsumexp"].get<double>(), 2e-3);
  }
}

TEST(Golden, PromptIdsFromTokenizer) {
  auto tok = Tokenizer::load(test::demo_model_dir());
  for (const auto& c : golden()["float32"]["generate"])
    EXPECT_EQ(tok->encode(c["prompt"].get<std::string>(), true), c["prompt_ids"].get<std::vector<int32_t>>());
}

TEST(Golden, Bfloat16Agreement) {
  // transformers runs bf16 end to end (activations rounded to bf16 after every op); qforge holds
  // bf16 weights but computes in f32, so tokens may part ways after a near-tie. We require the
  // first 8 greedy tokens and every top-1 of the last logits to agree, and report the rest.
  auto m = test::load_demo("cpu", DType::BF16);
  int agree_total = 0, total = 0;
  for (const auto& c : golden()["bfloat16"]["generate"]) {
    auto prompt = c["prompt_ids"].get<std::vector<int32_t>>();
    auto want = c["greedy_new_ids"].get<std::vector<int32_t>>();
    auto logits = m->forward(prompt, 0, false);
    EXPECT_EQ(argmax(logits), c["last_logits_top10_ids"][0].get<int32_t>());
    auto got = test::greedy(*m, prompt, int(want.size()));
    size_t prefix = 0;
    while (prefix < want.size() && got[prefix] == want[prefix]) ++prefix;
    EXPECT_GE(prefix, 8u) << c["prompt"];
    agree_total += int(prefix);
    total += int(want.size());
  }
  RecordProperty("bf16_matching_prefix_tokens", std::to_string(agree_total) + "/" + std::to_string(total));
  std::printf("bf16: %d of %d golden greedy tokens agree before the first divergence\n", agree_total, total);
}

TEST(Golden, IncrementalDecodeEqualsFullForward) {
  auto m = test::load_demo("cpu", DType::F32);
  auto prompt = golden()["float32"]["generate"][1]["prompt_ids"].get<std::vector<int32_t>>();
  auto full = m->forward(prompt, 0, true);
  const size_t V = size_t(m->config().vocab_size);
  // Prefill the first 3 tokens, then one at a time.
  auto part = m->forward(std::span(prompt).first(3), 0, false);
  for (size_t i = 0; i < V; ++i) ASSERT_NEAR(part[i], full[2 * V + i], 1e-4);
  for (size_t p = 3; p < prompt.size(); ++p) {
    auto step = m->forward(std::span(prompt).subspan(p, 1), int64_t(p), false);
    for (size_t i = 0; i < V; ++i) ASSERT_NEAR(step[i], full[p * V + i], 1e-4) << "position " << p;
  }
}
