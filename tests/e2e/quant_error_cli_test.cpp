// tests/e2e/quant_error_cli_test.cpp — `qforge quant-error` on the demo model: the JSON contract, the
// pooled total relative MSE against eval/kjv_quant_reference.json (the reference pools every linear
// weight except lm_head: sum of squared errors over sum of squares), the human table and errors.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "test_support.h"

using qforge::test::run_qforge;

namespace {
std::string model() { return qforge::test::demo_model_dir().string(); }
}  // namespace

TEST(QuantErrorCli, JsonTotalsMatchEvalReference) {
  auto r = run_qforge("quant-error --model " + model() + " --formats nf4,int8,fp8,nvfp4,mxfp4,q4_0,int4 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = qforge::test::last_json_line(r.out);
  const auto ref = nlohmann::json::parse(qforge::test::read_file(qforge::test::source_dir() /
                                                                 "eval/kjv_quant_reference.json"))["simulated_weight_quantization"];
  ASSERT_EQ(j["formats"].size(), 7u);
  ASSERT_EQ(j["layers"].size(), 6u * 7u);  // 6 layers x q/k/v/o/gate/up/down; lm_head excluded as in the reference
  const std::pair<const char*, const char*> pairs[] = {{"nf4", "nf4_b64"},     {"int8", "int8_rowwise"},
                                                       {"fp8", "fp8_e4m3_tensor"}, {"nvfp4", "nvfp4_b16"},
                                                       {"mxfp4", "mxfp4_b32"}, {"q4_0", "q4_0_b32"}};
  for (auto [ours, theirs] : pairs) {
    const double got = j["total"][ours]["rel_mse"].get<double>();
    const double want = ref[theirs]["weight_rel_mse"].get<double>();
    // Same rules (bit-exact quantizers), different summation order (we pool in double): 0.1 %.
    EXPECT_NEAR(got, want, want * 1e-3) << ours;
    EXPECT_NEAR(j["total"][ours]["sqnr_db"].get<double>(), 10 * std::log10(1 / got), 1e-9) << ours;
  }
  // int4: our groups run along K per row (GPTQ); the reference's run over the flattened weight.
  EXPECT_NEAR(j["total"]["int4"]["rel_mse"].get<double>(), ref["int4_asym_g128"]["weight_rel_mse"].get<double>(),
              0.1 * ref["int4_asym_g128"]["weight_rel_mse"].get<double>());
  const auto& l0 = j["layers"][0];
  EXPECT_EQ(l0["name"], "model.layers.0.self_attn.q_proj");
  for (const char* k : {"rel_mse", "sqnr_db", "max_abs", "bytes_per_weight"}) EXPECT_TRUE(l0["nf4"].contains(k)) << k;
  EXPECT_GT(l0["nf4"]["max_abs"].get<double>(), l0["int8"]["max_abs"].get<double>());
  EXPECT_NEAR(j["total"]["nf4"]["bytes_per_weight"].get<double>(), 4.5 / 8, 1e-9);
}

TEST(QuantErrorCli, BlocksizeAndDoubleQuant) {
  auto a = qforge::test::last_json_line(run_qforge("quant-error --model " + model() + " --formats nf4 --blocksize 32 --json").out);
  auto b = qforge::test::last_json_line(run_qforge("quant-error --model " + model() + " --formats nf4 --blocksize 256 --json").out);
  auto c = qforge::test::last_json_line(run_qforge("quant-error --model " + model() + " --formats nf4 --double-quant --json").out);
  EXPECT_LT(a["total"]["nf4"]["rel_mse"].get<double>(), b["total"]["nf4"]["rel_mse"].get<double>());
  EXPECT_GT(a["total"]["nf4"]["bytes_per_weight"].get<double>(), b["total"]["nf4"]["bytes_per_weight"].get<double>());
  EXPECT_LT(c["total"]["nf4"]["bytes_per_weight"].get<double>(), 0.5625);
}

TEST(QuantErrorCli, HumanTableAndErrors) {
  auto r = run_qforge("quant-error --model " + model() + " --formats q4_0,int8");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* s : {"q_proj", "down_proj", "total", "q4_0", "int8", "bytes per weight"})
    EXPECT_NE(r.out.find(s), std::string::npos) << s;
  auto bad = run_qforge("quant-error --model " + model() + " --formats nf5");
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("nf5"), std::string::npos) << bad.err;
  auto k = run_qforge("quant-error --model " + model() + " --formats q4_k");  // 288 % 256 != 0
  EXPECT_NE(k.exit_code, 0);
  EXPECT_NE(k.err.find("model.layers.0.self_attn.q_proj"), std::string::npos) << k.err;
  auto missing = run_qforge("quant-error --model /nonexistent/dir");
  EXPECT_NE(missing.exit_code, 0);
}
