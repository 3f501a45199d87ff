// tests/gpu/multi_gpu_test.cpp — a model on the second GPU and a model split over two GPUs (and the CPU),
// as transformers' device_map="auto" with max_memory does it. Needs two usable GPUs; skips otherwise
// (scripts/gpu-test.sh runs it on a two-GPU machine). Greedy tokens equal the all-cpu run; the placement
// names which layers went where; each GPU's memory report is its own.
#include <gtest/gtest.h>

#include "backends/gpu_info.h"
#include "gpu_test_util.h"
#include "qforge/generate.h"
#include "qforge/model.h"
#include "test_support.h"

using namespace qforge;

namespace {

bool two_gpus() { return gputest::gpu_usable() && list_gpus().size() >= 2; }

#define QF_REQUIRE_TWO_GPUS() \
  if (!two_gpus()) GTEST_SKIP() << "needs two usable CUDA GPUs"

const std::vector<std::vector<int32_t>> kPrompts{{1, 2404, 28740, 28747, 28740}, {1, 415, 1526, 302}};

}  // namespace

TEST(MultiGpu, SecondGpuAloneMatchesCpu) {
  QF_REQUIRE_TWO_GPUS();
  auto g = test::load_demo("cuda:1", DType::F32);
  EXPECT_EQ(g->backend_name(), "cuda:1");
  auto cpu = test::load_demo("cpu", DType::F32);
  for (const auto& p : kPrompts) EXPECT_EQ(test::greedy(*g, p, 32), test::greedy(*cpu, p, 32));
}

// 45 MB on cuda:0 holds the f32 embeddings (36.9 MB) and one layer (weights + KV budget, ~5.1 MB); 12 MB on
// cuda:1 two more layers; the cpu the rest and the lm_head.
TEST(MultiGpu, AutoSplitsOverBothGpusAndCpu) {
  QF_REQUIRE_TWO_GPUS();
  std::string mm = "cuda:0=45MB,cuda:1=12MB";
  for (const auto& gi : list_gpus())
    if (gi.index > 1) mm += ",cuda:" + std::to_string(gi.index) + "=1B";
  auto split = test::load_demo("auto", DType::F32, mm);
  auto cpu = test::load_demo("cpu", DType::F32);
  const auto p = split->placement();
  ASSERT_EQ(p.size(), 3u) << split->backend_name();
  EXPECT_EQ(p[0].device, "cuda:0");
  EXPECT_TRUE(p[0].embed);
  EXPECT_EQ(p[0].layer_begin, 0);
  EXPECT_EQ(p[0].layer_end, 1);
  EXPECT_EQ(p[1].device, "cuda:1");
  EXPECT_EQ(p[1].layer_begin, 1);
  EXPECT_EQ(p[1].layer_end, 3);
  EXPECT_FALSE(p[1].head);
  EXPECT_EQ(p[2].device, "cpu");
  EXPECT_EQ(p[2].layer_begin, 3);
  EXPECT_EQ(p[2].layer_end, 6);
  EXPECT_TRUE(p[2].head);
  EXPECT_EQ(split->backend_name(), "cuda:0+cuda:1+cpu");
  for (const auto& pr : kPrompts) EXPECT_EQ(test::greedy(*split, pr, 32), test::greedy(*cpu, pr, 32));
  auto a = split->forward(kPrompts[0], 0, true), b = cpu->forward(kPrompts[0], 0, true);
  ASSERT_EQ(a.size(), b.size());
  double mx = 0;
  for (size_t i = 0; i < a.size(); ++i) mx = std::max(mx, double(std::fabs(a[i] - b[i])));
  EXPECT_LT(mx, 2e-3);
}

// Only the two GPUs, listed explicitly, with the lm_head on the second; bf16 weights.
TEST(MultiGpu, ExplicitTwoGpuListMatchesOneGpu) {
  QF_REQUIRE_TWO_GPUS();
  auto split = test::load_demo("cuda:0,cuda:1", DType::BF16, "cuda:0=24MB");
  const auto p = split->placement();
  ASSERT_EQ(p.size(), 2u) << split->backend_name();
  EXPECT_EQ(p[0].device, "cuda:0");
  EXPECT_EQ(p[1].device, "cuda:1");
  EXPECT_TRUE(p[1].head);
  EXPECT_GT(p[1].layer_end, p[1].layer_begin);
  auto one = test::load_demo("cuda", DType::BF16);
  for (const auto& pr : kPrompts) EXPECT_EQ(test::greedy(*split, pr, 24), test::greedy(*one, pr, 24));
}

TEST(MultiGpu, CliPlacementAndPerGpuMemory) {
  QF_REQUIRE_TWO_GPUS();
  const std::string args = "run --model '" + test::demo_model_dir().string() +
                           "' --prompt 'Ge1:1' --greedy --dtype f32 --max-new-tokens 12 --device auto --max-memory "
                           "'cuda:0=45MB,cuda:1=200MB' --report-memory --json";
  auto cpu = test::run_qforge("run --model '" + test::demo_model_dir().string() +
                              "' --prompt 'Ge1:1' --greedy --dtype f32 --max-new-tokens 12 --device cpu --json");
  ASSERT_EQ(cpu.exit_code, 0) << cpu.err;
  auto r = test::run_qforge(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = test::last_json_line(r.out);
  EXPECT_EQ(j["new_ids"], test::last_json_line(cpu.out)["new_ids"]);
  EXPECT_EQ(j["device"], "cuda:0+cuda:1");
  ASSERT_EQ(j["placement"].size(), 2u) << j["placement"].dump();
  EXPECT_EQ(j["placement"][1]["device"], "cuda:1");
  EXPECT_EQ(j["placement"][1]["lm_head"], true);
  ASSERT_TRUE(j["memory"].contains("gpus")) << j["memory"].dump();
  ASSERT_EQ(j["memory"]["gpus"].size(), 2u) << j["memory"]["gpus"].dump();
  for (int i = 0; i < 2; ++i) {
    const auto& g = j["memory"]["gpus"][i];
    EXPECT_EQ(g["device"], "cuda:" + std::to_string(i));
    EXPECT_GT(g["load_used_bytes"].get<int64_t>(), 0) << g.dump();
  }
  std::printf("two-GPU memory: %s\n", j["memory"]["gpus"].dump().c_str());
}
