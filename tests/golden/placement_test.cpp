// tests/golden/placement_test.cpp — device_map-style placement: the planner fills devices in order
// within their budgets, a model split over two backends (ref + cpu here; cuda + cpu on a GPU
// machine) gives the same greedy tokens and logits as one device, and a model that fits nowhere
// gets an out-of-memory error with the sizes.
#include <gtest/gtest.h>

#include <cmath>

#include "qforge/generate.h"
#include "qforge/model.h"
#include "qforge/status.h"
#include "test_support.h"

using namespace qforge;

TEST(Placement, SplitOverTwoBackendsMatchesOneDevice) {
  auto one = test::load_demo("cpu", DType::F32);
  auto split = test::load_demo("ref,cpu", DType::F32, "ref=50MB");  // f32 embeddings (36.9 MB) + 2 layers fit the first budget
  auto p = split->placement();
  ASSERT_EQ(p.size(), 2u);
  EXPECT_EQ(p[0].device, "ref");
  EXPECT_TRUE(p[0].embed);
  EXPECT_FALSE(p[0].head);
  EXPECT_EQ(p[0].layer_begin, 0);
  EXPECT_EQ(p[1].device, "cpu");
  EXPECT_EQ(p[1].layer_begin, p[0].layer_end);
  EXPECT_EQ(p[1].layer_end, 6);
  EXPECT_TRUE(p[1].head);
  EXPECT_EQ(split->backend_name(), "ref+cpu");
  std::vector<int32_t> prompt{1, 2404, 28740, 28747, 28740};
  auto a = one->forward(prompt, 0, true), b = split->forward(prompt, 0, true);
  ASSERT_EQ(a.size(), b.size());
  double mx = 0;
  for (size_t i = 0; i < a.size(); ++i) mx = std::max(mx, double(std::fabs(a[i] - b[i])));
  EXPECT_LT(mx, 1e-4);  // cpu vs ref arithmetic on part of the layers
  GenerateOptions g;
  g.max_new_tokens = 24;
  g.ignore_eos = true;
  EXPECT_EQ(generate(*one, nullptr, prompt, g).new_ids, generate(*split, nullptr, prompt, g).new_ids);
}

TEST(Placement, AutoFillsInOrderAndReportsOutOfMemory) {
  auto m = test::load_demo("ref,cpu", DType::F32, "ref=1GB");
  ASSERT_EQ(m->placement().size(), 1u);  // everything fits the first device
  EXPECT_EQ(m->placement()[0].device, "ref");
  try {
    test::load_demo("ref,cpu", DType::F32, "ref=10MB,cpu=10MB");
    FAIL() << "expected an out-of-memory error";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("out of memory"), std::string::npos) << msg;
    EXPECT_NE(msg.find("GiB"), std::string::npos) << msg;
  }
  EXPECT_THROW(test::load_demo("ref,cpu", DType::F32, "ref=lots"), Error);
}
