// tests/unit/quant_linear_test.cpp — quantized linear: the CPU kernel against the scalar reference on
// odd sizes (rows not a multiple of 8, 1/3/17 tokens) for every format, and the reference against
// dequantize_rows + a plain double matmul.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "backends/quant_linear.h"
#include "core/thread_pool.h"

using namespace qforge;

namespace {
struct Case { QuantFormat f; int64_t rows, cols; QuantParams p; };

std::vector<float> randn(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = d(rng);
  return v;
}

std::vector<Case> cases() {
  QuantParams dq, pc, sym, g32;
  dq.double_quant = true;
  pc.per_channel = true;
  sym.symmetric = true;
  g32.blocksize = 32;
  return {{QuantFormat::NF4, 13, 99, {}},      {QuantFormat::NF4, 21, 130, dq},  {QuantFormat::FP4, 13, 77, {}},
          {QuantFormat::INT8, 19, 101, {}},    {QuantFormat::FP8_E4M3, 13, 99, {}},
          {QuantFormat::FP8_E4M3, 11, 45, pc}, {QuantFormat::FP8_E5M2, 13, 99, {}},
          {QuantFormat::NVFP4, 15, 100, {}},   {QuantFormat::MXFP4, 15, 300, {}},
          {QuantFormat::INT4, 13, 200, {}},    {QuantFormat::INT4, 9, 72, sym},
          {QuantFormat::INT4, 9, 70, g32},     {QuantFormat::Q4_0, 13, 96, {}},
          {QuantFormat::Q8_0, 11, 288, {}},    {QuantFormat::Q4_K, 5, 512, {}}};
}
}  // namespace

TEST(QuantLinear, CpuMatchesReferenceEveryFormat) {
  ThreadPool::set_global_threads(3);
  for (const auto& c : cases()) {
    const auto wv = randn(c.rows * c.cols, 7);
    Tensor w = Tensor::empty(DType::F32, {c.rows, c.cols});
    std::copy(wv.begin(), wv.end(), w.data<float>());
    const auto q = quantize_weight(w, c.f, c.p);
    std::vector<float> deq(size_t(c.rows * c.cols));
    dequantize_rows(q, 0, c.rows, deq.data());
    for (int64_t nt : {1, 3, 17}) {
      const auto x = randn(nt * c.cols, 99);
      std::vector<float> yr(size_t(nt * c.rows)), yc(yr.size());
      quant_linear_ref(q, x.data(), nt, yr.data());
      quant_linear_cpu(q, x.data(), nt, yc.data());
      for (int64_t t = 0; t < nt; ++t)
        for (int64_t r = 0; r < c.rows; ++r) {
          double exact = 0, mag = 0;
          for (int64_t k = 0; k < c.cols; ++k) {
            const double p = double(deq[size_t(r * c.cols + k)]) * x[size_t(t * c.cols + k)];
            exact += p;
            mag += std::fabs(p);
          }
          const size_t i = size_t(t * c.rows + r);
          // ref accumulates in double: only its final f32 cast (half an ulp) separates it from exact.
          EXPECT_NEAR(yr[i], exact, std::fabs(exact) * 6e-8 + 1e-30) << quant_traits(c.f).name;
          // cpu accumulates in f32 (FMA lanes, tile partial sums): the classic bound is K * 2^-24 * sum|w x|;
          // we allow twice that. Any decoding difference would be orders of magnitude larger.
          const double tol = 2.0 * double(c.cols) * std::ldexp(1.0, -24) * mag + 1e-30;
          EXPECT_NEAR(yc[i], yr[i], tol) << quant_traits(c.f).name << " t=" << t << " r=" << r << " nt=" << nt;
        }
    }
  }
  ThreadPool::set_global_threads(0);
}
