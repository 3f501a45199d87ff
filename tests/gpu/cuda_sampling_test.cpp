// tests/gpu/cuda_sampling_test.cpp — sampling on the GPU (Backend::select_top_k of the cuda
// backend, cuda_sampling.cu) against the host selection on random logits: ties, NaN, -inf, +-0,
// vocab sizes around the 4096-key chunk and not multiples of it, k = 1 (argmax) up to the device
// limit and past it (host fallback), with and without the repetition penalty: ids equal, values
// and the penalised row bit-identical. Then generate() on the demo model: greedy equal to the
// cpu backend, and sampling on the GPU equal to the whole-row host sampler on the same GPU logits.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "gpu_test_util.h"
#include "qforge/generate.h"
#include "qforge/model.h"
#include "qforge/sampler.h"
#include "sampling/candidates.h"
#include "test_support.h"

using namespace qforge;
using namespace qforge::gputest;

namespace {

enum class Shape { Normal, Ties, NegInf, NaNs, Zeros, AllEqual, AllNegInf };
const char* shape_name(Shape s) {
  static const char* n[] = {"normal", "ties", "neg-inf", "nan", "zeros", "all-equal", "all-neg-inf"};
  return n[int(s)];
}

std::vector<float> make_row(size_t V, Shape s, uint32_t seed) {
  auto v = randv(V, seed, 3.f);
  std::mt19937 rng(seed ^ 0x9e3779b9u);
  std::uniform_int_distribution<size_t> pick(0, V - 1);
  switch (s) {
    case Shape::Normal: break;
    case Shape::Ties:
      for (auto& x : v) x = std::round(x);
      break;
    case Shape::NegInf:
      for (size_t i = 0; i < V / 3 + 1; ++i) v[pick(rng)] = -INFINITY;
      break;
    case Shape::NaNs:
      for (int i = 0; i < 3; ++i) v[pick(rng)] = NAN;
      break;
    case Shape::Zeros:
      for (auto& x : v) x = rng() % 2 ? 0.0f : -0.0f;
      v[pick(rng)] = -1.f;
      break;
    case Shape::AllEqual:
      for (auto& x : v) x = 0.25f;
      break;
    case Shape::AllNegInf:
      for (auto& x : v) x = -INFINITY;
      break;
  }
  return v;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * 4) == 0;
}

}  // namespace

TEST(CudaSampling, TopKMatchesTheHostSelection) {
  QF_REQUIRE_GPU();
  auto be = make_backend("cuda");
  int cases = 0;
  for (size_t V : {1u, 7u, 1000u, 4095u, 4096u, 4097u, 32000u, 151937u, 262147u}) {
    for (Shape sh : {Shape::Normal, Shape::Ties, Shape::NegInf, Shape::NaNs, Shape::Zeros, Shape::AllEqual,
                     Shape::AllNegInf}) {
      for (int k : {1, 2, 51, 1000, 1024, 1025}) {
        if (size_t(k) > V) continue;
        for (float pen : {1.0f, 1.3f, 0.7f}) {
          const uint32_t seed = uint32_t(V * 31 + int(sh) * 7 + k + int(pen * 10));
          auto row = make_row(V, sh, seed);
          std::vector<int32_t> hist;
          std::mt19937 rng(seed);
          for (int i = 0; i < 40; ++i) hist.push_back(int32_t(rng() % V));
          hist.push_back(int32_t(V) + 5);  // outside the vocabulary: never penalised
          auto pids = pen != 1.0f ? penalized_ids(hist, int64_t(V)) : std::vector<int32_t>{};

          std::vector<float> want_row = row;
          apply_repetition_penalty(want_row, pids, pen);
          std::vector<float> want_v(static_cast<size_t>(k));
          std::vector<int32_t> want_id(static_cast<size_t>(k));
          select_top_k_host(want_row, k, want_v.data(), want_id.data());

          auto buf = upload(*be, row);
          std::vector<float> got_v(static_cast<size_t>(k));
          std::vector<int32_t> got_id(static_cast<size_t>(k));
          be->select_top_k(buf.get(), int64_t(V), pids, pen, k, got_v.data(), got_id.data());
          const std::string what = std::string("V=") + std::to_string(V) + " shape=" + shape_name(sh) +
                                   " k=" + std::to_string(k) + " penalty=" + std::to_string(pen);
          ASSERT_EQ(got_id, want_id) << what;
          ASSERT_TRUE(same_bits(got_v, want_v)) << what;
          ASSERT_TRUE(same_bits(download(*be, buf.get(), V), want_row)) << what << ": penalised row differs";
          if (k == 1 && pen == 1.0f) ASSERT_EQ(got_id[0], argmax(row)) << what;
          ++cases;
        }
      }
    }
  }
  std::printf("%d device selections equal to the host's\n", cases);
}

TEST(CudaSampling, PenaltyEdgeValues) {
  QF_REQUIRE_GPU();
  auto be = make_backend("cuda");
  // Values where s / p and s * p round: the GPU must round exactly like the host (IEEE RN).
  std::vector<float> row{1.f, -1.f, 3.1415927f, -2.7182817f, 1e-38f, -1e-38f, 3e38f, -3e38f, 0.f, -0.f, NAN, INFINITY,
                         -INFINITY, 0.1f, -0.1f, 7.f};
  std::vector<int32_t> all(row.size());
  for (size_t i = 0; i < all.size(); ++i) all[i] = int32_t(i);
  for (float pen : {1.1f, 0.3f, 3.0f, 1.0000001f}) {
    auto want = row;
    apply_repetition_penalty(want, all, pen);
    auto buf = upload(*be, row);
    float v;
    int32_t id;
    be->select_top_k(buf.get(), int64_t(row.size()), all, pen, 1, &v, &id);
    EXPECT_TRUE(same_bits(download(*be, buf.get(), row.size()), want)) << "penalty " << pen;
    EXPECT_EQ(id, 10);  // the NaN
  }
}

namespace {
std::unique_ptr<Model> load_demo(const std::string& device) {
  LoadOptions o;
  o.device = device;
  o.dtype = DType::F32;
  return Model::load(test::demo_model_dir().string(), o);
}
const std::vector<int32_t> kPrompt{1, 2404, 28740, 28747, 28740};
}  // namespace

TEST(CudaSampling, GreedyGenerationEqualsTheCpuBackend) {
  QF_REQUIRE_GPU();
  auto gpu = load_demo("cuda"), cpu = load_demo("cpu");
  for (float pen : {1.0f, 1.3f}) {
    GenerateOptions g;
    g.max_new_tokens = 32;
    g.ignore_eos = true;
    g.sampling.repetition_penalty = pen;
    EXPECT_EQ(generate(*gpu, nullptr, kPrompt, g).new_ids, generate(*cpu, nullptr, kPrompt, g).new_ids)
        << "penalty " << pen;
  }
}

TEST(CudaSampling, TopKSamplingEqualsTheWholeRowSamplerOnTheSameGpu) {
  QF_REQUIRE_GPU();
  auto m = load_demo("cuda");
  int cases = 0;
  for (int top_k : {1, 5, 50, 1000})
    for (float pen : {1.0f, 1.2f})
      for (uint64_t seed : {1u, 2u, 3u}) {
        GenerateOptions g;
        g.max_new_tokens = 24;
        g.ignore_eos = true;
        g.sampling.greedy = false;
        g.sampling.top_k = top_k;
        g.sampling.temperature = 0.8f;
        g.sampling.top_p = 0.95f;
        g.sampling.repetition_penalty = pen;
        g.sampling.seed = seed;
        auto got = generate(*m, nullptr, kPrompt, g).new_ids;
        const auto want = test::sample_whole_rows(*m, kPrompt, g.sampling, 24);
        EXPECT_EQ(got, want) << "top_k " << top_k << " penalty " << pen << " seed " << seed;
        ++cases;
      }
  std::printf("%d sampled generations equal\n", cases);
}
