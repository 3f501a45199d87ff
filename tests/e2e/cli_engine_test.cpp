// tests/e2e/cli_engine_test.cpp — the CLI contract of issue 2 as users call it: `run --json`
// fields and golden tokens, `logits` output file, seeded sampling, and one-line errors with a
// non-zero exit for missing/truncated/unsupported inputs and bad flags (never partial output).
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "test_support.h"

using namespace qforge;
using nlohmann::json;

namespace {

std::string model() { return "'" + test::demo_model_dir().string() + "'"; }

// A copy of the demo model in a temp dir, to corrupt.
std::filesystem::path copy_demo() {
  auto d = test::temp_dir("model") / "m";
  std::filesystem::copy(test::demo_model_dir(), d, std::filesystem::copy_options::recursive);
  return d;
}

void expect_one_line_error(const test::CmdResult& r, const std::string& must_contain) {
  EXPECT_NE(r.exit_code, 0);
  EXPECT_LT(r.exit_code, 128) << "crashed: " << r.err;
  EXPECT_NE(r.err.find(must_contain), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

}  // namespace

TEST(CliRun, JsonContractAndGoldenGreedy) {
  json g = json::parse(test::read_file(test::golden_json()));
  const auto& c = g["float32"]["generate"][1];
  auto r = test::run_qforge("run --model " + model() + " --prompt '" + c["prompt"].get<std::string>() +
                            "' --max-new-tokens 48 --greedy --ignore-eos --dtype f32 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j = test::last_json_line(r.out);
  EXPECT_EQ(j["prompt_ids"], c["prompt_ids"]);
  EXPECT_EQ(j["new_ids"], c["greedy_new_ids"]);
  EXPECT_EQ(j["text"], c["greedy_text"]);
  EXPECT_EQ(j["stop_reason"], "length");
  EXPECT_GT(j["timings"]["prefill_tokens_per_s"].get<double>(), 0);
  EXPECT_GT(j["timings"]["decode_tokens_per_s"].get<double>(), 0);
}

TEST(CliRun, StopsAtEosUnlessIgnored) {
  // Prompt 2 of the goldens produces EOS (id 2) as its 29th greedy token.
  json g = json::parse(test::read_file(test::golden_json()));
  const auto& c = g["float32"]["generate"][2];
  auto want = c["greedy_new_ids"].get<std::vector<int>>();
  size_t eos_at = size_t(std::find(want.begin(), want.end(), 2) - want.begin());
  ASSERT_LT(eos_at, want.size());
  std::string prompt = c["prompt"].get<std::string>();
  // The prompt has newlines: pass it through the environment rather than shell quoting.
  setenv("QFORGE_TEST_PROMPT", prompt.c_str(), 1);
  auto r = test::run_qforge("run --model " + model() + " --prompt \"$QFORGE_TEST_PROMPT\" --max-new-tokens 48 --greedy --dtype f32 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j = test::last_json_line(r.out);
  EXPECT_EQ(j["prompt_ids"], c["prompt_ids"]);
  EXPECT_EQ(j["stop_reason"], "eos");
  EXPECT_EQ(j["new_ids"].size(), eos_at + 1);
}

TEST(CliRun, SameSeedSameSample) {
  std::string cmd = "run --model " + model() + " --prompt 'Ge1:1' --max-new-tokens 24 --temperature 0.9 --top-p 0.95 --json";
  auto a = test::run_qforge(cmd + " --seed 7"), b = test::run_qforge(cmd + " --seed 7"), c = test::run_qforge(cmd + " --seed 8");
  ASSERT_EQ(a.exit_code, 0) << a.err;
  EXPECT_EQ(test::last_json_line(a.out)["new_ids"], test::last_json_line(b.out)["new_ids"]);
  EXPECT_NE(test::last_json_line(a.out)["new_ids"], test::last_json_line(c.out)["new_ids"]);
}

TEST(CliLogits, WritesFloat32MatchingGolden) {
  auto dir = test::temp_dir("logits");
  auto out = dir / "l.f32";
  auto r = test::run_qforge("logits --model " + model() + " --prompt 'Ge1:1' --dtype f32 --out '" + out.string() + "'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string got = test::read_file(out), want = test::read_file(test::source_dir() / "models" / "kjv-llama-14m.logits-prompt0.f32");
  ASSERT_EQ(got.size(), want.size());
  const float* a = reinterpret_cast<const float*>(got.data());
  const float* b = reinterpret_cast<const float*>(want.data());
  double mx = 0;
  for (size_t i = 0; i < got.size() / 4; ++i) mx = std::max(mx, double(std::fabs(a[i] - b[i])));
  EXPECT_LT(mx, 2e-3);
}

TEST(CliErrors, MissingModelDirectory) {
  expect_one_line_error(test::run_qforge("run --model /nonexistent/qforge-model --prompt hi"), "/nonexistent/qforge-model");
}

TEST(CliErrors, TruncatedShardNamesTheFile) {
  auto d = copy_demo();
  auto shard = d / "model-00002-of-00002.safetensors";
  std::filesystem::resize_file(shard, std::filesystem::file_size(shard) / 2);
  expect_one_line_error(test::run_qforge("run --model '" + d.string() + "' --prompt hi"), "model-00002-of-00002.safetensors");
}

TEST(CliErrors, UnsupportedArchitectureIsNamed) {
  auto d = copy_demo();
  json cfg = json::parse(test::read_file(d / "config.json"));
  cfg["architectures"] = {"GPT2LMHeadModel"};
  std::ofstream(d / "config.json") << cfg.dump();
  expect_one_line_error(test::run_qforge("run --model '" + d.string() + "' --prompt hi"), "GPT2LMHeadModel");
}

TEST(CliErrors, MissingTensorIsNamed) {
  auto d = copy_demo();
  json idx = json::parse(test::read_file(d / "model.safetensors.index.json"));
  idx["weight_map"]["model.layers.9.mlp.up_proj.weight"] = "model-00002-of-00002.safetensors";
  std::ofstream(d / "model.safetensors.index.json") << idx.dump();
  auto r = test::run_qforge("run --model '" + d.string() + "' --prompt hi");
  expect_one_line_error(r, "model.layers.9.mlp.up_proj.weight");
}

TEST(CliErrors, BadFlagsAndValues) {
  EXPECT_NE(test::run_qforge("run --model " + model() + " --prompt hi --no-such-flag").exit_code, 0);
  expect_one_line_error(test::run_qforge("run --model " + model() + " --prompt hi --dtype f8"), "--dtype");
  expect_one_line_error(test::run_qforge("run --model " + model() + " --prompt hi --temperature -1"), "--temperature");
  expect_one_line_error(test::run_qforge("run --model " + model() + " --prompt hi --device tpu"), "tpu");
}

TEST(CliErrors, UnwritableLogitsLeaveNothing) {
  auto dir = test::temp_dir("ro");
  auto out = dir / "missing-subdir" / "x.f32";
  expect_one_line_error(test::run_qforge("logits --model " + model() + " --prompt hi --out '" + out.string() + "'"),
                        out.string());
  EXPECT_FALSE(std::filesystem::exists(out));
  EXPECT_FALSE(std::filesystem::exists(dir / "missing-subdir"));
}

TEST(CliInfo, ReportsCpuAndBackends) {
  auto r = test::run_qforge("info --json");
  ASSERT_EQ(r.exit_code, 0);
  json j = test::last_json_line(r.out);
  EXPECT_TRUE(j.contains("version"));
  EXPECT_TRUE(j["cpu"]["features"].contains("avx2"));
  EXPECT_GE(j["cpu"]["threads"].get<int>(), 1);
}
