// tests/e2e/gguf_cli_test.cpp — GGUF through the CLI: `qforge quantize --out FILE.gguf` for every
// format, `qforge run --model FILE.gguf` (tokenizer from the GGUF) giving the same greedy tokens as the
// safetensors checkpoint in f32/f16, and one-line errors for bad formats, existing files and corrupt GGUF.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "test_support.h"

using qforge::test::run_qforge;
namespace fs = std::filesystem;

namespace {

std::string q(const fs::path& p) { return "'" + p.string() + "'"; }

TEST(GgufCli, QuantizeAndRunEveryFormat) {
  const auto dir = qforge::test::temp_dir("gguf_cli");
  const std::string model = q(qforge::test::demo_model_dir());
  auto ref = run_qforge("run --model " + model + " --prompt Ge1:1 --max-new-tokens 24 --greedy --dtype f32 --json");
  ASSERT_EQ(ref.exit_code, 0) << ref.err;
  const auto rj = qforge::test::last_json_line(ref.out);
  for (const char* fmt : {"f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q2_k", "q3_k", "q4_k", "q5_k",
                          "q6_k", "q4_k_m", "q5_k_m"}) {
    const fs::path out = dir / (std::string(fmt) + ".gguf");
    auto r = run_qforge("quantize --model " + model + " --format " + fmt + " --out " + q(out) + " --json");
    ASSERT_EQ(r.exit_code, 0) << fmt << ": " << r.err;
    const auto j = qforge::test::last_json_line(r.out);
    EXPECT_EQ(j["serialization"], "gguf");
    EXPECT_EQ(j["tensors"], 56);  // embed + norm + 6 x (2 norms + 7 linears); tied lm_head
    int64_t weights = 0;  // the 43 2-D weights, per ggml type
    for (const auto& [t, n] : j["tensor_types"].items()) weights += n.get<int64_t>();
    EXPECT_EQ(weights, 43) << fmt;
    if (std::string(fmt) == "q4_k_m") {  // llama.cpp's mix (GgufModel.Q4KMIsLlamaCppsMix has the per-tensor rule)
      EXPECT_EQ(j["tensor_types"]["Q6_K"], 2);
      EXPECT_EQ(j["tensor_types"]["Q4_K"], 4);
      EXPECT_EQ(j["fallback_type"], "Q5_0,Q8_0");
    }
    if (std::string(fmt) == "q5_k_m") {  // the same mix on Q5_K, whose short rows fall back to Q5_1
      EXPECT_EQ(j["tensor_types"]["Q6_K"], 2);
      EXPECT_EQ(j["tensor_types"]["Q5_K"], 4);
      EXPECT_EQ(j["fallback_type"], "Q5_1,Q8_0");
    }
    auto g = run_qforge("run --model " + q(out) + " --prompt Ge1:1 --max-new-tokens 24 --greedy --json");
    ASSERT_EQ(g.exit_code, 0) << fmt << ": " << g.err;
    const auto gj = qforge::test::last_json_line(g.out);
    EXPECT_EQ(gj["prompt_ids"], rj["prompt_ids"]) << fmt;
    if (std::string(fmt) == "f32" || std::string(fmt) == "f16" || std::string(fmt) == "bf16")
      EXPECT_EQ(gj["new_ids"], rj["new_ids"]) << fmt;  // the demo weights are bf16: exact in all three
    EXPECT_EQ(gj["new_ids"].size(), 24u) << fmt;
  }
}

TEST(GgufCli, ErrorsAreOneLine) {
  const auto dir = qforge::test::temp_dir("gguf_cli_err");
  const std::string model = q(qforge::test::demo_model_dir());
  auto r = run_qforge("quantize --model " + model + " --format nf4 --out " + q(dir / "x.gguf"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("cannot be written as GGUF"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir / "x.gguf"));
  std::ofstream(dir / "exists.gguf") << "x";
  r = run_qforge("quantize --model " + model + " --format q8_0 --out " + q(dir / "exists.gguf"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("already exists"), std::string::npos) << r.err;
  std::ofstream(dir / "junk.gguf") << "GGUF\x03\x00\x00\x00garbage";
  r = run_qforge("run --model " + q(dir / "junk.gguf") + " --prompt x --max-new-tokens 2");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("junk.gguf: truncated"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  r = run_qforge("run --model " + q(dir / "missing.gguf") + " --prompt x");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("missing.gguf"), std::string::npos) << r.err;
  // A random-weight GGUF has no vocabulary: run needs one, and says so.
  r = run_qforge("quantize --random-weights " + q(qforge::test::demo_model_dir() / "config.json") +
                 " --format q4_0 --out " + q(dir / "rand.gguf"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = run_qforge("run --model " + q(dir / "rand.gguf") + " --prompt x");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("has no tokenizer"), std::string::npos) << r.err;
}

}  // namespace
