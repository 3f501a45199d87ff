// tests/golden/ppl_golden_test.cpp — perplexity of eval/kjv_eval.txt (ctx 512, 200 windows, f32
// compute) against eval/kjv_quant_reference.json: ±0.02 unquantized, ±0.05 for nf4/int8/fp8/q4_0,
// ±0.1 for nvfp4/mxfp4 (the tolerances: the reference simulated each rule in PyTorch).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "qforge/model.h"
#include "qforge/perplexity.h"
#include "qforge/tokenizer.h"
#include "test_support.h"

using namespace qforge;

namespace {

struct PplCase {
  const char* quant;       // --quant value, "" for none
  const char* ref_key;     // key in simulated_weight_quantization, "" for float32
  double tolerance;
};

const std::vector<int32_t>& eval_tokens() {
  static std::vector<int32_t> ids = [] {
    auto tok = Tokenizer::load(test::demo_model_dir());
    return tok->encode(test::read_file(test::source_dir() / "eval" / "kjv_eval.txt"), false);
  }();
  return ids;
}

}  // namespace

class PerplexityGolden : public ::testing::TestWithParam<PplCase> {};

TEST_P(PerplexityGolden, WithinTolerance) {
  const PplCase& c = GetParam();
  auto ref = nlohmann::json::parse(test::read_file(test::source_dir() / "eval" / "kjv_quant_reference.json"));
  double want = *c.ref_key ? ref["simulated_weight_quantization"][c.ref_key]["ppl"].get<double>()
                           : ref["reference_ppl"]["float32"].get<double>();
  LoadOptions o;
  o.dtype = DType::F32;
  o.compute_dtype = DType::F32;
  if (*c.quant) o.quant = *parse_quant_format(c.quant);
  auto m = Model::load(test::demo_model_dir().string(), o);
  auto r = perplexity(*m, eval_tokens(), 512, 200);
  EXPECT_EQ(r.tokens_scored, 200 * 511);
  RecordProperty("ppl", std::to_string(r.ppl));
  std::printf("%s: ppl %.5f (reference %.5f, diff %+.5f)\n", *c.quant ? c.quant : "float32", r.ppl, want, r.ppl - want);
  EXPECT_NEAR(r.ppl, want, c.tolerance);
}

INSTANTIATE_TEST_SUITE_P(Formats, PerplexityGolden,
                         ::testing::Values(PplCase{"", "", 0.02}, PplCase{"nf4", "nf4_b64", 0.05},
                                           PplCase{"int8", "int8_rowwise", 0.05}, PplCase{"fp8", "fp8_e4m3_tensor", 0.05},
                                           PplCase{"q4_0", "q4_0_b32", 0.05}, PplCase{"nvfp4", "nvfp4_b16", 0.1},
                                           PplCase{"mxfp4", "mxfp4_b32", 0.1}),
                         [](const auto& info) { return std::string(*info.param.quant ? info.param.quant : "float32"); });
