// tests/golden/memory_measured_test.cpp — issue 5's proof: on the demo model, the weight bytes
// qforge measures (every allocation is tagged) are within 3% of the config-only estimate for
// every format, and loading stays within the streaming bound (final weights + one f32 tensor).
#include <gtest/gtest.h>

#include "qforge/memory.h"
#include "qforge/memory_estimate.h"
#include "qforge/model.h"
#include "test_support.h"

using namespace qforge;

struct MemCase {
  const char* dtype;
  const char* quant;
  bool double_quant;
};

class MeasuredMemory : public ::testing::TestWithParam<MemCase> {};

TEST_P(MeasuredMemory, WeightsWithin3PercentAndStreamingBound) {
  const MemCase& c = GetParam();
  LoadOptions o;
  o.dtype = parse_dtype(c.dtype);
  if (*c.quant) o.quant = *parse_quant_format(c.quant);
  o.quant_params.double_quant = c.double_quant;
  const int64_t before = MemoryAccounting::get(MemDevice::Host, MemCategory::Weights).current;
  auto m = Model::load(test::demo_model_dir().string(), o);
  const int64_t measured = MemoryAccounting::get(MemDevice::Host, MemCategory::Weights).current - before;
  WeightScheme s;
  s.format = m->quant_format();
  s.params = m->quant_params();
  s.dtype = m->weight_dtype();
  const int64_t estimated = weights_bytes(m->config(), s, m->weight_dtype());
  std::printf("%s %s%s: measured %lld, estimated %lld (%+.3f%%), load peak %lld <= bound %lld\n", c.dtype, c.quant,
              c.double_quant ? "+dq" : "", (long long)measured, (long long)estimated,
              100.0 * double(measured - estimated) / double(estimated), (long long)m->load_peak_bytes(),
              (long long)m->streaming_bound_bytes());
  // Held bytes also count in-struct scalars that are not heap allocations (the double-quant
  // offset: 4 bytes per linear), so allow 4 bytes per linear layer.
  const int64_t n_linear = 7 * m->config().num_hidden_layers + 1;
  EXPECT_NEAR(double(measured), double(m->weight_bytes()), double(4 * n_linear)) << "accounted vs held";
  EXPECT_NEAR(double(measured), double(estimated), 0.03 * double(estimated));
  EXPECT_GE(m->load_peak_bytes(), measured);
  EXPECT_LE(m->load_peak_bytes(), m->streaming_bound_bytes());
}

INSTANTIATE_TEST_SUITE_P(Formats, MeasuredMemory,
                         ::testing::Values(MemCase{"f32", "", false}, MemCase{"f16", "", false}, MemCase{"bf16", "", false},
                                           MemCase{"bf16", "nf4", false}, MemCase{"bf16", "nf4", true},
                                           MemCase{"bf16", "fp4", false}, MemCase{"bf16", "int8", false},
                                           MemCase{"bf16", "fp8", false}, MemCase{"bf16", "fp8-e5m2", false},
                                           MemCase{"bf16", "nvfp4", false}, MemCase{"bf16", "mxfp4", false},
                                           MemCase{"bf16", "int4", false}, MemCase{"bf16", "q4_0", false},
                                           MemCase{"bf16", "q8_0", false}));
