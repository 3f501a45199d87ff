// tests/gpu/gpu_cpu_split_test.cpp — a model split between the GPU and the CPU (device "auto" with
// a small --max-memory for cuda:0, as transformers' device_map="auto" + max_memory): the demo
// model's embeddings and first layers on cuda:0, the rest and the lm_head on the cpu backend.
// Greedy tokens equal the all-cpu run; the placement (API, CLI JSON and the stderr line) names
// which layers went where; the GPU holds only its part of the weights; --report-memory shows the driver's view of cuda:0 beside qforge's.
#include <gtest/gtest.h>

#include "backends/gpu_info.h"
#include "gpu_test_util.h"
#include "qforge/generate.h"
#include "qforge/memory.h"
#include "qforge/model.h"
#include "test_support.h"

using namespace qforge;

namespace {

// 50 MB on cuda:0 holds the f32 embeddings (36.9 MB) and two layers (weights + KV budget of
// 2,048 positions, 5.1 MB each); other GPUs (if any) get 1 byte, so the rest goes to the cpu.
std::string small_gpu_budget() {
  std::string mm = "cuda:0=50MB";
  for (const auto& g : list_gpus())
    if (g.index != 0) mm += ",cuda:" + std::to_string(g.index) + "=1B";
  return mm;
}



}  // namespace

TEST(GpuCpuSplit, AutoWithSmallGpuBudgetSplitsAndMatchesCpu) {
  QF_REQUIRE_GPU();
  const int64_t gpu_weights0 = MemoryAccounting::get(MemDevice::Cuda0, MemCategory::Weights).current;
  auto split = test::load_demo("auto", DType::F32, small_gpu_budget());
  // The GPU holds only its part: embeddings (36.9 MB) + layers 0-1 (3.5 MB each) + their norms,
  // not the whole model (58 MB).
  const int64_t gpu_weights = MemoryAccounting::get(MemDevice::Cuda0, MemCategory::Weights).current - gpu_weights0;
  EXPECT_GT(gpu_weights, 43'000'000);
  EXPECT_LT(gpu_weights, 46'000'000);
  auto cpu = test::load_demo("cpu", DType::F32);
  auto p = split->placement();
  ASSERT_EQ(p.size(), 2u) << split->backend_name();
  EXPECT_EQ(p[0].device, "cuda:0");
  EXPECT_TRUE(p[0].embed);
  EXPECT_FALSE(p[0].head);
  EXPECT_EQ(p[0].layer_begin, 0);
  EXPECT_EQ(p[0].layer_end, 2);
  EXPECT_EQ(p[1].device, "cpu");
  EXPECT_FALSE(p[1].embed);
  EXPECT_EQ(p[1].layer_begin, 2);
  EXPECT_EQ(p[1].layer_end, 6);
  EXPECT_TRUE(p[1].head);
  EXPECT_EQ(split->backend_name(), "cuda:0+cpu");
  const std::vector<std::vector<int32_t>> prompts{{1, 2404, 28740, 28747, 28740}, {1, 415, 1526, 302}};
  for (const auto& prompt : prompts) EXPECT_EQ(test::greedy(*split, prompt, 32), test::greedy(*cpu, prompt, 32));
  // Logits close too (the GPU's f32 arithmetic on two layers).
  auto a = split->forward(prompts[0], 0, true), b = cpu->forward(prompts[0], 0, true);
  ASSERT_EQ(a.size(), b.size());
  double mx = 0;
  for (size_t i = 0; i < a.size(); ++i) mx = std::max(mx, double(std::fabs(a[i] - b[i])));
  EXPECT_LT(mx, 2e-3);
}

TEST(GpuCpuSplit, CliReportsPlacementAndGpuMemory) {
  QF_REQUIRE_GPU();
  const std::string base = "run --model '" + test::demo_model_dir().string() +
                           "' --prompt 'Ge1:1' --greedy --dtype f32 --max-new-tokens 12 --device auto --max-memory '" +
                           small_gpu_budget() + "' --report-memory";
  auto cpu = test::run_qforge("run --model '" + test::demo_model_dir().string() +
                              "' --prompt 'Ge1:1' --greedy --dtype f32 --max-new-tokens 12 --device cpu --json");
  ASSERT_EQ(cpu.exit_code, 0) << cpu.err;
  auto r = test::run_qforge(base + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = test::last_json_line(r.out);
  EXPECT_EQ(j["new_ids"], test::last_json_line(cpu.out)["new_ids"]);
  EXPECT_EQ(j["device"], "cuda:0+cpu");
  ASSERT_EQ(j["placement"].size(), 2u) << j["placement"].dump();
  EXPECT_EQ(j["placement"][0]["device"], "cuda:0");
  EXPECT_EQ(j["placement"][0]["layers"], nlohmann::json::array({0, 2}));
  EXPECT_EQ(j["placement"][0]["embed"], true);
  EXPECT_EQ(j["placement"][1]["device"], "cpu");
  EXPECT_EQ(j["placement"][1]["layers"], nlohmann::json::array({2, 6}));
  EXPECT_EQ(j["placement"][1]["lm_head"], true);
  // The driver's view of cuda:0 beside qforge's accounting.
  ASSERT_TRUE(j["memory"].contains("gpus")) << j["memory"].dump();
  ASSERT_EQ(j["memory"]["gpus"].size(), 1u);
  const auto& g = j["memory"]["gpus"][0];
  EXPECT_EQ(g["device"], "cuda:0");
  const int64_t total = g["driver_total_bytes"], free_now = g["driver_free_bytes"];
  EXPECT_GT(total, 0);
  EXPECT_EQ(g["driver_used_bytes"].get<int64_t>(), total - free_now);
  const int64_t load_used = g["load_used_bytes"], accounted = g["accounted_bytes"];
  EXPECT_EQ(g["driver_free_before_load_bytes"].get<int64_t>() - free_now, load_used);
  // The driver sees at least what qforge allocated on the GPU (embeddings + 2 layers, ~47 MB,
  // cuBLAS workspace 32 MiB): allocations are rounded up, never down. Other processes on the
  // GPU could blur this; the test machine runs one.
  EXPECT_GT(accounted, 40'000'000);
  EXPECT_GE(load_used, accounted);
  std::printf("cuda:0 load used %lld bytes (driver), qforge accounts %lld\n", (long long)load_used, (long long)accounted);
  // Without --json: the placement line on stderr and the GPU lines of the memory report.
  auto t = test::run_qforge(base);
  ASSERT_EQ(t.exit_code, 0) << t.err;
  EXPECT_NE(t.err.find("[placement: cuda:0: embed + layers 0-1; cpu: layers 2-5 + lm_head]"), std::string::npos) << t.err;
  EXPECT_NE(t.out.find("cuda:0         driver:"), std::string::npos) << t.out;
  EXPECT_NE(t.out.find("this load:"), std::string::npos) << t.out;
}
