// tests/unit/sampling_candidates_test.cpp — the candidate path of sampling (Backend::select_top_k
// with its default host implementation on the cpu backend, then Sampler::sample_candidates, with
// the whole-row fallback) against the plain path (Sampler::sample on the whole row): the same
// tokens, step after step with one sampler each (so the random draws stay in step too), over many
// seeds, temperatures, top-k/top-p/min-p, repetition penalties, vocab sizes and logit shapes
// (ties, -inf, NaN, +-0). Also the selection order itself and generate() on the demo model.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>

#include "backends/backend.h"
#include "qforge/generate.h"
#include "qforge/model.h"
#include "qforge/sampler.h"
#include "qforge/status.h"
#include "sampling/candidates.h"
#include "test_support.h"

using namespace qforge;

namespace {

enum class Shape { Normal, Ties, WithNegInf, WithNaN, Zeros, FewFinite };

std::vector<float> make_logits(size_t V, Shape shape, std::mt19937& rng) {
  std::normal_distribution<float> nd(0.f, 3.f);
  std::vector<float> v(V);
  for (auto& x : v) x = nd(rng);
  std::uniform_int_distribution<size_t> pick(0, V - 1);
  switch (shape) {
    case Shape::Normal: break;
    case Shape::Ties:  // few distinct values: ties at every rank, the k boundary included
      for (auto& x : v) x = std::round(x) * 0.5f;
      break;
    case Shape::WithNegInf:
      for (size_t i = 0; i < V / 4 + 1; ++i) v[pick(rng)] = -INFINITY;
      break;
    case Shape::WithNaN:
      v[pick(rng)] = NAN;
      if (V > 3) v[pick(rng)] = NAN;
      break;
    case Shape::Zeros:  // +0 and -0 tie
      for (auto& x : v) x = (rng() % 3 == 0) ? (rng() % 2 ? 0.0f : -0.0f) : std::round(x);
      break;
    case Shape::FewFinite:  // fewer finite logits than top_k: the k-th is -inf
      for (auto& x : v) x = -INFINITY;
      for (size_t i = 0; i < std::min<size_t>(3, V); ++i) v[pick(rng)] = nd(rng);
      break;
  }
  return v;
}

struct Settings {
  SamplingParams p;
  size_t V;
  Shape shape;
};

// Runs `steps` draws through both paths with fresh logits each step; returns how many draws the
// candidates decided (the rest fell back to the whole row).
int compare_paths(const Settings& s, uint32_t data_seed, int steps, Backend& be) {
  Sampler plain(s.p), cand(s.p);
  std::mt19937 rng(data_seed);
  std::vector<int32_t> hist;
  for (int i = 0; i < 6; ++i) hist.push_back(int32_t(rng() % s.V));
  auto buf = be.alloc(int64_t(s.V), MemCategory::Scratch);
  int decided = 0;
  for (int step = 0; step < steps; ++step) {
    auto logits = make_logits(s.V, s.shape, rng);
    std::vector<float> row = logits;
    const int32_t want = plain.sample(row, hist);

    const int need = cand.candidates_needed(int64_t(s.V));
    int32_t got;
    if (need == 0) {
      row = logits;
      got = cand.sample(row, hist);
    } else {
      be.from_host(logits.data(), buf.get(), int64_t(s.V));
      std::vector<float> vals(static_cast<size_t>(need));
      std::vector<int32_t> ids(static_cast<size_t>(need));
      const float pen = s.p.repetition_penalty;
      auto pids = pen != 1.0f ? penalized_ids(hist, int64_t(s.V)) : std::vector<int32_t>{};
      be.select_top_k(buf.get(), int64_t(s.V), pids, pen, need, vals.data(), ids.data());
      if (auto id = cand.sample_candidates(vals, ids)) {
        got = *id;
        ++decided;
      } else {
        std::vector<float> back(s.V);
        be.to_host(buf.get(), back.data(), int64_t(s.V));
        got = cand.sample_penalized(back);
      }
    }
    EXPECT_EQ(got, want) << "step " << step << " V=" << s.V << " shape=" << int(s.shape) << " greedy=" << s.p.greedy
                         << " T=" << s.p.temperature << " top_k=" << s.p.top_k << " top_p=" << s.p.top_p
                         << " min_p=" << s.p.min_p << " pen=" << s.p.repetition_penalty << " seed=" << s.p.seed;
    if (got != want) return decided;
    hist.push_back(want);
  }
  return decided;
}

}  // namespace

TEST(SamplingCandidates, SelectTopKHostOrder) {
  // NaN first (lowest id among NaNs), then larger values, +0 == -0, ties to the lower id.
  std::vector<float> row{1.f, NAN, 3.f, -0.0f, 3.f, 0.0f, -INFINITY, NAN, 2.f};
  std::vector<float> v(9);
  std::vector<int32_t> id(9);
  select_top_k_host(row, 9, v.data(), id.data());
  EXPECT_EQ(id, (std::vector<int32_t>{1, 7, 2, 4, 8, 0, 3, 5, 6}));
  EXPECT_TRUE(std::signbit(v[6]));  // the value is the row's own (-0 kept)
  select_top_k_host(row, 1, v.data(), id.data());
  EXPECT_EQ(id[0], argmax(row));
  std::vector<float> no_nan{1.f, 3.f, -0.0f, 3.f, 0.0f};
  select_top_k_host(no_nan, 1, v.data(), id.data());
  EXPECT_EQ(id[0], 1);
  EXPECT_THROW(select_top_k_host(row, 10, v.data(), id.data()), Error);
  EXPECT_THROW(select_top_k_host(row, 0, v.data(), id.data()), Error);
}

TEST(SamplingCandidates, SelectTopKAgreesWithAFullSort) {
  std::mt19937 rng(5);
  for (Shape sh : {Shape::Normal, Shape::Ties, Shape::WithNegInf, Shape::WithNaN, Shape::Zeros}) {
    for (size_t V : {1u, 2u, 17u, 500u}) {
      auto row = make_logits(V, sh, rng);
      std::vector<int32_t> all(V);
      std::iota(all.begin(), all.end(), 0);
      std::sort(all.begin(), all.end(),
                [&](int32_t a, int32_t b) { return logit_ranks_before(row[size_t(a)], a, row[size_t(b)], b); });
      for (int k : {1, 2, 5, int(V)}) {
        if (k > int(V)) continue;
        std::vector<float> v(static_cast<size_t>(k));
        std::vector<int32_t> id(static_cast<size_t>(k));
        select_top_k_host(row, k, v.data(), id.data());
        EXPECT_TRUE(std::equal(id.begin(), id.end(), all.begin())) << "V=" << V << " k=" << k;
      }
    }
  }
}

TEST(SamplingCandidates, DefaultSelectAppliesThePenaltyInPlace) {
  auto be = make_backend("cpu");
  std::vector<float> row{2.f, -2.f, 1.f, 0.5f};
  auto buf = be->alloc(4, MemCategory::Scratch);
  be->from_host(row.data(), buf.get(), 4);
  std::vector<int32_t> pen{0, 1};
  float v[2];
  int32_t id[2];
  be->select_top_k(buf.get(), 4, pen, 2.f, 2, v, id);
  std::vector<float> back(4);
  be->to_host(buf.get(), back.data(), 4);
  EXPECT_EQ(back, (std::vector<float>{1.f, -4.f, 1.f, 0.5f}));
  EXPECT_EQ(id[0], 0);  // 1.0 at id 0 ties 1.0 at id 2: the lower id first
  EXPECT_EQ(id[1], 2);
  std::vector<int32_t> bad{4};
  EXPECT_THROW(be->select_top_k(buf.get(), 4, bad, 2.f, 1, v, id), Error);
}

TEST(SamplingCandidates, CandidatesNeeded) {
  SamplingParams p;
  p.greedy = true;
  EXPECT_EQ(Sampler(p).candidates_needed(100), 1);
  p.greedy = false;
  p.top_k = 50;
  EXPECT_EQ(Sampler(p).candidates_needed(100), 51);
  EXPECT_EQ(Sampler(p).candidates_needed(50), 0);  // top-k keeps the whole row: no filtering
  EXPECT_EQ(Sampler(p).candidates_needed(51), 51);
  p.top_k = 0;
  EXPECT_EQ(Sampler(p).candidates_needed(100), 0);
}

TEST(SamplingCandidates, SameTokensAsTheWholeRowOverManySettings) {
  auto be = make_backend("cpu");
  int runs = 0, draws = 0, decided = 0;
  uint32_t seed = 1;
  for (size_t V : {7u, 64u, 1000u}) {
    for (Shape sh : {Shape::Normal, Shape::Ties, Shape::WithNegInf, Shape::WithNaN, Shape::Zeros, Shape::FewFinite}) {
      for (bool greedy : {true, false}) {
        for (int top_k : {1, 2, 5, 50, int(V) - 1, int(V)}) {
          for (float temp : {0.35f, 1.0f, 1.7f}) {
            for (float top_p : {1.0f, 0.9f, 0.4f}) {
              for (float min_p : {0.0f, 0.1f}) {
                for (float pen : {1.0f, 1.3f, 0.75f}) {
                  if (greedy && (top_k != 1 || temp != 1.0f || top_p != 1.0f || min_p != 0.0f)) continue;
                  if (top_k <= 0) continue;
                  Settings s;
                  s.V = V;
                  s.shape = sh;
                  s.p.greedy = greedy;
                  s.p.top_k = top_k;
                  s.p.temperature = temp;
                  s.p.top_p = top_p;
                  s.p.min_p = min_p;
                  s.p.repetition_penalty = pen;
                  s.p.seed = 1000 + seed;
                  decided += compare_paths(s, seed++, 6, *be);
                  draws += 6;
                  ++runs;
                  if (HasFailure()) return;
                }
              }
            }
          }
        }
      }
    }
  }
  RecordProperty("draws", draws);
  RecordProperty("decided_by_candidates", decided);
  std::printf("%d settings, %d draws, %d decided by the candidates alone\n", runs, draws, decided);
  // The candidate path must actually be exercised (not always the fallback).
  EXPECT_GT(decided, draws / 4);
}

TEST(SamplingCandidates, GenerateEqualsThePlainLoopOnTheDemoModel) {
  LoadOptions o;
  o.device = "cpu";
  o.dtype = DType::F32;
  auto m = Model::load(test::demo_model_dir().string(), o);
  const std::vector<int32_t> prompt{1, 2404, 28740, 28747, 28740};
  struct Case {
    bool greedy;
    int top_k;
    float temp, top_p, min_p, pen;
    uint64_t seed;
  };
  const Case cases[] = {{true, 50, 1.f, 1.f, 0.f, 1.f, 0},     {true, 50, 1.f, 1.f, 0.f, 1.4f, 0},
                        {false, 50, 1.f, 1.f, 0.f, 1.f, 1},    {false, 50, 0.7f, 0.9f, 0.f, 1.f, 2},
                        {false, 10, 1.3f, 0.8f, 0.05f, 1.2f, 3}, {false, 1, 1.f, 1.f, 0.f, 1.f, 4},
                        {false, 0, 0.9f, 0.95f, 0.f, 1.1f, 5},  {false, 40, 1.f, 1.f, 0.f, 0.9f, 6}};
  for (const Case& c : cases) {
    GenerateOptions g;
    g.max_new_tokens = 20;
    g.ignore_eos = true;
    g.sampling.greedy = c.greedy;
    g.sampling.top_k = c.top_k;
    g.sampling.temperature = c.temp;
    g.sampling.top_p = c.top_p;
    g.sampling.min_p = c.min_p;
    g.sampling.repetition_penalty = c.pen;
    g.sampling.seed = c.seed;
    auto got = generate(*m, nullptr, prompt, g).new_ids;
    const auto want = test::sample_whole_rows(*m, prompt, g.sampling, 20);  // the plain path
    EXPECT_EQ(got, want) << "seed " << c.seed;
  }
}
