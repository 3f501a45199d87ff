// tests/unit/backend_ops_test.cpp — the optimised CPU backend against the scalar reference on
// random, odd-sized inputs: linear (f32/f16/bf16 weights, 1..17 tokens, bias; the tile kernel of every
// ISA the CPU has against a double reference), attention (GQA, continuing positions, sliding window),
// and the element-wise ops.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "backends/backend.h"
#include "backends/cpu/cpu_kernels.h"
#include "backends/ref/ref_ops.h"
#include "core/thread_pool.h"
#include "test_support.h"

namespace qforge::cpu {
void linear(const Linear& l, const float* x, int64_t n, float* y);
}

using namespace qforge;

namespace {

Tensor tensor_from(const std::vector<float>& v, std::vector<int64_t> shape, DType dt) {
  Tensor f = Tensor::view(DType::F32, shape, v.data(), nullptr);
  return f.to(dt);
}

// Max |a-b| relative to the largest |reference| value.
double rel_max_err(const std::vector<float>& got, const std::vector<float>& want) {
  double m = 0, s = 1e-30;
  for (size_t i = 0; i < got.size(); ++i) {
    m = std::max(m, double(std::fabs(got[i] - want[i])));
    s = std::max(s, double(std::fabs(want[i])));
  }
  return m / s;
}

}  // namespace

class LinearCpuVsRef : public ::testing::TestWithParam<std::tuple<DType, int, int, int>> {};

TEST_P(LinearCpuVsRef, Matches) {
  auto [dt, n, in, out] = GetParam();
  ThreadPool::set_global_threads(2);
  Linear l;
  l.in = in;
  l.out = out;
  auto wv = test::randn(size_t(in * out), 7 + in);
  l.weight = tensor_from(wv, {out, in}, dt);
  auto bv = test::randn(size_t(out), 9);
  l.bias = tensor_from(bv, {out}, DType::F32);
  auto x = test::randn(size_t(n * in), 11 + n);
  std::vector<float> y_ref(size_t(n * out)), y_cpu(size_t(n * out), NAN);
  ref::linear(l, x.data(), n, y_ref.data());
  cpu::linear(l, x.data(), n, y_cpu.data());
  // f32 accumulation in a different order vs double: error grows ~ sqrt(in) * 2^-24.
  EXPECT_LT(rel_max_err(y_cpu, y_ref), 2e-5) << dtype_name(dt) << " n=" << n << " in=" << in << " out=" << out;
}

INSTANTIATE_TEST_SUITE_P(OddShapes, LinearCpuVsRef,
                         ::testing::Combine(::testing::Values(DType::F32, DType::F16, DType::BF16),
                                            ::testing::Values(1, 3, 4, 17), ::testing::Values(7, 64, 291),
                                            ::testing::Values(1, 5, 130)));

TEST(AttentionCpuVsRef, GqaContinuationAndWindow) {
  ThreadPool::set_global_threads(2);
  const int64_t heads = 6, kvh = 2, hd = 20, n = 5, pos0 = 9, kvd = kvh * hd;
  for (int64_t window : {0, 4}) {
    auto cache0 = test::randn(size_t((pos0 + n) * kvd), 3);
    auto q = test::randn(size_t(n * heads * hd), 4), k = test::randn(size_t(n * kvd), 5), v = test::randn(size_t(n * kvd), 6);
    std::vector<float> kc_r = cache0, vc_r = cache0, kc_c = cache0, vc_c = cache0;
    std::vector<float> out_r(size_t(n * heads * hd)), out_c(out_r.size());
    ModelConfig cfg;
    cfg.head_dim = hd;
    auto rope = make_rope_table(cfg, pos0 + n);
    auto q2 = q, k2 = k;
    AttentionShape s{heads, kvh, hd, window};
    make_backend("ref")->attention(q.data(), k.data(), v.data(), kc_r.data(), vc_r.data(), n, pos0, s, rope, out_r.data());
    make_backend("cpu")->attention(q2.data(), k2.data(), v.data(), kc_c.data(), vc_c.data(), n, pos0, s, rope, out_c.data());
    EXPECT_EQ(q, q2);  // rope applied identically (same reference code)
    EXPECT_EQ(kc_r, kc_c);
    EXPECT_LT(rel_max_err(out_c, out_r), 1e-5) << "window " << window;
  }
}

TEST(AttentionRef, SingleKeyReturnsItsValue) {
  // With one visible position the softmax weight is exactly 1: output = v.
  const int64_t hd = 8;
  auto q = test::randn(hd, 1), k = test::randn(hd, 2), v = test::randn(hd, 3);
  std::vector<float> kc(hd), vc(hd), out(hd);
  ref::attention(q.data(), k.data(), v.data(), kc.data(), vc.data(), 1, 0, 1, 1, hd, 0, out.data());
  for (int64_t i = 0; i < hd; ++i) EXPECT_FLOAT_EQ(out[size_t(i)], v[size_t(i)]);
}

TEST(RmsNormRef, UnitWeightGivesUnitRms) {
  auto x = test::randn(37, 5, 3.0f);
  std::vector<float> ones(37, 1.0f), y(37);
  Tensor w = Tensor::view(DType::F32, {37}, ones.data(), nullptr);
  ref::rmsnorm(x.data(), w, 1, 37, 0.0f, y.data());
  double ss = 0;
  for (float f : y) ss += double(f) * f;
  EXPECT_NEAR(ss / 37, 1.0, 1e-5);
}

TEST(RopeTable, Llama3ScalingMatchesFormula) {
  ModelConfig c;
  c.head_dim = 64;
  c.rope_theta = 500000.0;
  c.rope_scaling.type = RopeType::Llama3;
  c.rope_scaling.factor = 8;
  c.rope_scaling.low_freq_factor = 1;
  c.rope_scaling.high_freq_factor = 4;
  c.rope_scaling.original_max_position_embeddings = 8192;
  auto t = make_rope_table(c, 2);
  // position 1: cos/sin of inv_freq itself. Highest frequency (i=0) is unscaled: inv_freq=1.
  EXPECT_FLOAT_EQ(t.cos[size_t(t.half + 0)], float(std::cos(1.0)));
  // Lowest frequency (i=31): wavelength > 8192 -> divided by the factor 8.
  double inv = 1.0 / std::pow(500000.0, 62.0 / 64.0) / 8.0;
  EXPECT_NEAR(t.sin[size_t(t.half + 31)], std::sin(inv), 1e-9);
}

TEST(Elementwise, SwigluMatchesDefinition) {
  auto g = test::randn(19, 1), u = test::randn(19, 2);
  std::vector<float> o(19);
  ref::swiglu(g.data(), u.data(), 19, o.data());
  for (size_t i = 0; i < 19; ++i) EXPECT_FLOAT_EQ(o[i], float(g[i] / (1 + std::exp(-double(g[i]))) * u[i]));
}

// The fused linear op (input transform + several layers + residual accumulate) on the CPU
// backend against the reference composition, for each input transform.
TEST(FusedLinear, CpuMatchesRefForEveryInputForm) {
  ThreadPool::set_global_threads(2);
  const int64_t n = 3, in = 45, out1 = 17, out2 = 9;
  Linear a, b;
  a.in = b.in = in;
  a.out = out1;
  b.out = out2;
  auto wa = test::randn(size_t(out1 * in), 1), wb = test::randn(size_t(out2 * in), 2);
  a.weight = tensor_from(wa, {out1, in}, DType::BF16);
  b.weight = tensor_from(wb, {out2, in}, DType::F32);
  auto x = test::randn(size_t(n * in), 3), up = test::randn(size_t(n * in), 4), nw = test::randn(size_t(in), 5);
  Tensor norm = tensor_from(nw, {in}, DType::F32);
  const Linear* ls[] = {&a, &b};
  for (int form = 0; form < 3; ++form)
    for (bool acc : {false, true}) {
      LinearInput li{x.data()};
      if (form == 1) li = {x.data(), &norm, 1e-5f};
      if (form == 2) li = {x.data(), nullptr, 0, up.data()};
      auto ya_r = test::randn(size_t(n * out1), 6), yb_r = test::randn(size_t(n * out2), 7);
      auto ya_c = ya_r, yb_c = yb_r;
      float* yr[] = {ya_r.data(), yb_r.data()};
      float* yc[] = {ya_c.data(), yb_c.data()};
      make_backend("ref")->linear(ls, li, n, yr, acc);
      make_backend("cpu")->linear(ls, li, n, yc, acc);
      EXPECT_LT(rel_max_err(ya_c, ya_r), 2e-5) << form << acc;
      EXPECT_LT(rel_max_err(yb_c, yb_r), 2e-5) << form << acc;
    }
}

// The AMX-BF16 prefill (bf16 / f16 weights) against a double reference: rows not a multiple of the
// 64- / 32-row blocks, token counts with a padded last tile, K of one and of several 32-column blocks.
// Bound: 6 K 2^-24 sum|w x| (three exact partial products per weight, f32 accumulation) for bf16; f16
// adds the dropped low x low term (< 2^-24 |w x| each).
TEST(FloatLinearTiles, AmxMatchesDoubleReference) {
  if (!cpu::amx_bf16_available()) GTEST_SKIP() << "no AMX-BF16 on this CPU (or QFORGE_CPU_AMX=0)";
  for (int threads : {1, 2}) {
    ThreadPool::set_global_threads(threads);
    for (DType wt : {DType::F16, DType::BF16})
      for (auto [rows, in] : {std::pair<int64_t, int64_t>{1, 32}, {17, 64}, {70, 96}, {33, 2080}})
        for (int64_t nt : {1, 16, 19, 40, 300}) {  // 300: two token chunks of the kernel
          if (nt == 300 && in > 96) continue;
          const auto wf = test::randn(rows * in, 5 + uint32_t(rows));
          std::vector<uint16_t> w16(wf.size());
          std::vector<float> wq(wf.size());
          for (size_t i = 0; i < wf.size(); ++i) {
            w16[i] = wt == DType::F16 ? f32_to_f16(wf[i]) : f32_to_bf16(wf[i]);
            wq[i] = wt == DType::F16 ? f16_to_f32(w16[i]) : bf16_to_f32(w16[i]);
          }
          const auto x = test::randn(nt * in, 9 + uint32_t(nt));
          std::vector<float> y(size_t(nt * rows + 64), -7.0f);  // 64 sentinels past the output
          cpu::linear_amx16(w16.data(), wt, rows, in, x.data(), nt, y.data());
          for (size_t i = size_t(nt * rows); i < y.size(); ++i) ASSERT_EQ(y[i], -7.0f) << "wrote past the output";
          for (int64_t t = 0; t < nt; ++t)
            for (int64_t r = 0; r < rows; ++r) {
              double exact = 0, mag = 0;
              for (int64_t i = 0; i < in; ++i) {
                exact += double(wq[size_t(r * in + i)]) * x[size_t(t * in + i)];
                mag += std::fabs(double(wq[size_t(r * in + i)]) * x[size_t(t * in + i)]);
              }
              ASSERT_NEAR(y[size_t(t * rows + r)], exact, 8.0 * double(in) * std::ldexp(1.0, -24) * mag + 1e-30)
                  << dtype_name(wt) << " " << rows << "x" << in << " nt=" << nt << " t=" << t << " r=" << r
                  << " threads=" << threads;
            }
        }
  }
  // Every part counts: x = 1 + 2^-9 + 2^-18 has three non-zero bf16 parts (h = 1, m = 2^-9, l = 2^-18) and an
  // f16 w = 1 + 2^-10 two (h = 1, l = 2^-10); 32 of them sum exactly in f32 (bf16 w = 1) or to within
  // the dropped 32 x 2^-28 (f16). A missing part would be off by 2^-13 or more.
  ThreadPool::set_global_threads(2);
  const float xv = 1.0f + std::ldexp(1.0f, -9) + std::ldexp(1.0f, -18);
  const std::vector<float> xs(16 * 32, xv);
  for (DType wt : {DType::BF16, DType::F16}) {
    const float wv = wt == DType::BF16 ? 1.0f : 1.0f + std::ldexp(1.0f, -10);
    const std::vector<uint16_t> w16(16 * 32, wt == DType::BF16 ? f32_to_bf16(wv) : f32_to_f16(wv));
    std::vector<float> y(16 * 16, 0.0f);
    cpu::linear_amx16(w16.data(), wt, 16, 32, xs.data(), 16, y.data());
    const double want = 32.0 * double(xv) * double(wv);
    for (float v : y) ASSERT_NEAR(v, want, wt == DType::BF16 ? 0.0 : 32.0 * std::ldexp(1.0, -27)) << dtype_name(wt);
  }
  ThreadPool::set_global_threads(0);
}

// The float-weight tile kernels (scalar, AVX2, AVX-512 where the CPU has them) against a double
// reference on odd shapes: rows not a multiple of the row tile, K with a tail of every length mod 16,
// token counts hitting every token-tile remainder. Bound: 2 K 2^-24 sum|w x| (f32 accumulation).
TEST(FloatLinearTiles, EveryIsaMatchesDoubleReference) {
  using Tile = void (*)(const void*, DType, int64_t, int64_t, const float*, int64_t, float*, int64_t);
  std::vector<std::pair<const char*, Tile>> tiles = {{"scalar", cpu::dot_tile_scalar}};
  if (cpu::cpu_has_avx2()) tiles.push_back({"avx2", cpu::dot_tile_avx2});
  if (cpu::cpu_has_avx512()) tiles.push_back({"avx512", cpu::dot_tile_avx512});
  int checked = 0;
  for (DType wt : {DType::F32, DType::F16, DType::BF16})
    for (auto [rows, in] : {std::pair<int64_t, int64_t>{1, 1}, {3, 15}, {5, 16}, {7, 33}, {9, 100}, {13, 257}})
      for (int64_t nt : {1, 2, 3, 4, 5, 7, 9}) {
        const auto wf = test::randn(rows * in, 5 + uint32_t(rows));
        std::vector<uint16_t> w16(wf.size());
        std::vector<float> wq(wf.size());  // the weight as the kernel sees it (after the dtype rounding)
        for (size_t i = 0; i < wf.size(); ++i) {
          w16[i] = wt == DType::F16 ? f32_to_f16(wf[i]) : f32_to_bf16(wf[i]);
          wq[i] = wt == DType::F32 ? wf[i] : wt == DType::F16 ? f16_to_f32(w16[i]) : bf16_to_f32(w16[i]);
        }
        const void* w = wt == DType::F32 ? static_cast<const void*>(wf.data()) : w16.data();
        const auto x = test::randn(nt * in, 9 + uint32_t(nt));
        for (auto [name, tile] : tiles) {
          const int64_t ys = rows + 3;  // a row stride wider than the rows, as in a chunk of a layer
          std::vector<float> y(size_t(nt * ys), -7.0f);
          tile(w, wt, rows, in, x.data(), nt, y.data(), ys);
          for (int64_t t = 0; t < nt; ++t)
            for (int64_t r = 0; r < ys; ++r) {
              if (r >= rows) {
                ASSERT_EQ(y[size_t(t * ys + r)], -7.0f) << name << ": wrote past the rows";
                continue;
              }
              double exact = 0, mag = 0;
              for (int64_t i = 0; i < in; ++i) {
                exact += double(wq[size_t(r * in + i)]) * x[size_t(t * in + i)];
                mag += std::fabs(double(wq[size_t(r * in + i)]) * x[size_t(t * in + i)]);
              }
              ASSERT_NEAR(y[size_t(t * ys + r)], exact, 2.0 * double(in) * std::ldexp(1.0, -24) * mag + 1e-30)
                  << name << " " << dtype_name(wt) << " " << rows << "x" << in << " nt=" << nt << " t=" << t << " r=" << r;
            }
          ++checked;
        }
      }
  EXPECT_GE(checked, 3 * 6 * 7);
}
