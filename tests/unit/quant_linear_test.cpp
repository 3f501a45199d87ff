// tests/unit/quant_linear_test.cpp — quantized linear: the reference against dequantize_rows + a double
// matmul, and every CPU fast path (each ISA level this CPU has, forced explicitly; f32 and int8
// activations) against the reference on odd sizes (rows not a multiple of 8 or 16, cols not a multiple
// of the block where the format allows, more than one 1024-wide kernel segment, 1/3/17 tokens).
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "backends/cpu/quant_linear_kernels.h"
#include "backends/quant_linear.h"
#include "core/thread_pool.h"
#include "qforge/status.h"
#include "test_support.h"

using namespace qforge;
using test::randn;
using cpu_quant::ActMode;
using cpu_quant::Isa;

namespace {
struct Case { QuantFormat f; int64_t rows, cols; QuantParams p; };

std::vector<Case> cases() {
  QuantParams dq, pc, sym, g32, g64, b32, b128;
  dq.double_quant = true;
  b128.blocksize = 128;
  pc.per_channel = true;
  sym.symmetric = true;
  g32.blocksize = 32;
  g64.blocksize = 64;
  b32.blocksize = 32;
  return {{QuantFormat::NF4, 13, 99, {}},       {QuantFormat::NF4, 21, 130, dq},   {QuantFormat::NF4, 7, 1088, {}},
          {QuantFormat::NF4, 5, 2080, dq},      {QuantFormat::NF4, 9, 96, b32},    {QuantFormat::FP4, 13, 77, {}},
          {QuantFormat::FP4, 11, 160, {}},      {QuantFormat::INT8, 19, 101, {}},  {QuantFormat::INT8, 6, 1100, {}},
          {QuantFormat::FP8_E4M3, 13, 99, {}},  {QuantFormat::FP8_E4M3, 11, 45, pc},
          {QuantFormat::FP8_E4M3, 7, 1056, pc}, {QuantFormat::FP8_E5M2, 13, 99, {}},
          {QuantFormat::NVFP4, 15, 100, {}},    {QuantFormat::NVFP4, 9, 1040, {}}, {QuantFormat::NVFP4, 5, 64, {}},
          {QuantFormat::MXFP4, 15, 300, {}},    {QuantFormat::MXFP4, 7, 1090, {}}, {QuantFormat::INT4, 13, 200, {}},
          {QuantFormat::INT4, 9, 72, sym},      {QuantFormat::INT4, 9, 70, g32},   {QuantFormat::INT4, 37, 200, {}},
          {QuantFormat::INT4, 35, 1100, g64},   {QuantFormat::INT4, 16, 64, sym},  {QuantFormat::Q4_0, 13, 96, {}},
          {QuantFormat::Q4_0, 9, 1088, {}},     {QuantFormat::Q4_0, 3, 64, {}},    {QuantFormat::Q8_0, 11, 288, {}},
          {QuantFormat::Q8_0, 6, 1120, {}},     {QuantFormat::Q4_K, 5, 512, {}},   {QuantFormat::Q4_K, 3, 1280, {}},
          // Integer kernels (groups of kIntRowGroup rows): 1, 2, 5, 37 rows; one block only; odd block counts; weights
          // > 512 KB so that several threads split the rows (the last group short).
          {QuantFormat::Q4_0, 1, 32, {}},       {QuantFormat::Q4_0, 2, 160, {}},   {QuantFormat::Q4_0, 37, 160, {}},
          {QuantFormat::Q4_0, 5, 2080, {}},     {QuantFormat::Q4_0, 1030, 1024, {}},
          {QuantFormat::Q8_0, 1, 32, {}},       {QuantFormat::Q8_0, 37, 96, {}},   {QuantFormat::Q8_0, 7, 2048, {}},
          {QuantFormat::Q8_0, 1030, 544, {}},
          // nf4/fp4/nvfp4 rows of whole 128-column chunks (the AVX-512 kernels' 128-weight decode: two absmax
          // blocks of 64 per chunk, or one of 128, or eight nvfp4 blocks), double quant, one chunk and many.
          {QuantFormat::NF4, 7, 1152, {}},      {QuantFormat::NF4, 5, 256, dq},    {QuantFormat::NF4, 3, 384, b128},
          {QuantFormat::FP4, 6, 128, {}},       {QuantFormat::NF4, 1030, 512, {}},
          {QuantFormat::NVFP4, 7, 1152, {}},    {QuantFormat::NVFP4, 3, 128, {}},  {QuantFormat::NVFP4, 1030, 256, {}},
          // mxfp4 the same way (four e8m0 blocks of 32 per 128-weight chunk, two per 64 at AVX2).
          {QuantFormat::MXFP4, 7, 1152, {}},    {QuantFormat::MXFP4, 3, 128, {}},  {QuantFormat::MXFP4, 1030, 256, {}},
          // q4_k super-blocks at AVX-512 (one 256-weight chunk each): many rows, several 1024-column segments.
          {QuantFormat::Q4_K, 1030, 256, {}},   {QuantFormat::Q4_K, 9, 2304, {}},
          // q5_0 / q6_k (the Q4_K_M mix's fallback and high-precision tensors): one block, odd block counts,
          // every Q6_K quarter and half, many rows.
          {QuantFormat::Q5_0, 13, 96, {}},      {QuantFormat::Q5_0, 1, 32, {}},    {QuantFormat::Q5_0, 1030, 288, {}},
          {QuantFormat::Q6_K, 5, 256, {}},      {QuantFormat::Q6_K, 11, 768, {}},  {QuantFormat::Q6_K, 1030, 512, {}},
          // legacy q4_1 / q5_1 (code d + m) and q5_k (q4_k with a fifth bit per code)
          {QuantFormat::Q4_1, 13, 96, {}},      {QuantFormat::Q5_1, 9, 160, {}},   {QuantFormat::Q5_1, 1030, 64, {}},
          {QuantFormat::Q5_K, 5, 512, {}},      {QuantFormat::Q5_K, 1030, 256, {}},
          // q2_k / q3_k: every quarter and half of a super-block, many rows
          {QuantFormat::Q2_K, 5, 512, {}},      {QuantFormat::Q3_K, 7, 256, {}},   {QuantFormat::Q3_K, 1030, 256, {}}};
}

std::string label(const Case& c, Isa isa, ActMode act, int64_t nt) {
  return std::string(quant_traits(c.f).name) + " " + std::to_string(c.rows) + "x" + std::to_string(c.cols) +
         " isa=" + std::string(cpu_quant::isa_name(isa)) + (act == ActMode::Int8 ? " int8-act" : " f32-act") +
         " nt=" + std::to_string(nt);
}

// Exact (double) y from the dequantized weight; `xs` may be the int8-rounded activations.
void exact_dot(const std::vector<float>& deq, const std::vector<float>& xs, int64_t rows, int64_t cols, int64_t t,
               int64_t r, double& exact, double& mag) {
  exact = mag = 0;
  for (int64_t k = 0; k < cols; ++k) {
    const double p = double(deq[size_t(r * cols + k)]) * xs[size_t(t * cols + k)];
    exact += p;
    mag += std::fabs(p);
  }
}
}  // namespace

TEST(QuantLinear, ReferenceMatchesDequantizedMatmul) {
  for (const auto& c : cases()) {
    const auto wv = randn(c.rows * c.cols, 7);
    Tensor w = Tensor::empty(DType::F32, {c.rows, c.cols});
    std::copy(wv.begin(), wv.end(), w.data<float>());
    const auto q = quantize_weight(w, c.f, c.p);
    std::vector<float> deq(size_t(c.rows * c.cols));
    dequantize_rows(q, 0, c.rows, deq.data());
    const int64_t nt = 3;
    const auto x = randn(nt * c.cols, 99);
    std::vector<float> yr(size_t(nt * c.rows));
    quant_linear_ref(q, x.data(), nt, yr.data());
    for (int64_t t = 0; t < nt; ++t)
      for (int64_t r = 0; r < c.rows; ++r) {
        double exact, mag;
        exact_dot(deq, x, c.rows, c.cols, t, r, exact, mag);
        // ref accumulates in double: only its final f32 cast (half an ulp) separates it from exact.
        EXPECT_NEAR(yr[size_t(t * c.rows + r)], exact, std::fabs(exact) * 6e-8 + 1e-30) << quant_traits(c.f).name;
      }
  }
}

TEST(QuantLinear, EveryIsaLevelMatchesReference) {
  ThreadPool::set_global_threads(3);
  int checked_levels = 0;
  for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512}) {
    if (!cpu_quant::isa_supported(isa)) {
      std::printf("[ skipped ] isa %s not available on this CPU\n", std::string(cpu_quant::isa_name(isa)).c_str());
      continue;
    }
    ++checked_levels;
    for (const auto& c : cases()) {
      const auto wv = randn(c.rows * c.cols, 7);
      Tensor w = Tensor::empty(DType::F32, {c.rows, c.cols});
      std::copy(wv.begin(), wv.end(), w.data<float>());
      const auto q = quantize_weight(w, c.f, c.p);
      std::vector<float> deq(size_t(c.rows * c.cols));
      dequantize_rows(q, 0, c.rows, deq.data());
      for (ActMode act : {ActMode::F32, ActMode::Int8}) {
        if (act == ActMode::Int8 && !cpu_quant::int8_act_supported(c.f, isa)) continue;
        for (int64_t nt : {1, 3, 17}) {
          const auto x = randn(nt * c.cols, 99 + uint32_t(nt));
          std::vector<float> yr(size_t(nt * c.rows)), yc(yr.size(), NAN);
          quant_linear_ref(q, x.data(), nt, yr.data());
          cpu_quant::quant_linear_cpu_isa(q, x.data(), nt, yc.data(), isa, act);
          for (int64_t t = 0; t < nt; ++t)
            for (int64_t r = 0; r < c.rows; ++r) {
              double exact, mag;
              exact_dot(deq, x, c.rows, c.cols, t, r, exact, mag);
              // f32 accumulation (FMA lanes, tile partial sums, scales folded per block or per row): the
              // classic bound is K 2^-24 sum|w x|; we allow twice that. A decoding error is far larger.
              double tol = 2.0 * double(c.cols) * std::ldexp(1.0, -24) * mag + 1e-30;
              if (act == ActMode::Int8) {
                // Activations rounded to int8 per block of 32 (codes from amax/127, scale d16 = that
                // rounded to f16): |dx| <= d/2 + 127 |d - d16| <= d (1/2 + 127 * 2^-11) per element,
                // so |dy| <= sum_k |w_k| that on top of the f32 accumulation bound.
                double act_err = 0;
                for (int64_t b = 0; b < c.cols / 32; ++b) {
                  float amax = 0;
                  for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[size_t(t * c.cols + b * 32 + i)]));
                  for (int i = 0; i < 32; ++i)
                    act_err += std::fabs(deq[size_t(r * c.cols + b * 32 + i)]) * (amax / 127.0) * (0.5 + 127.0 / 2048);
                }
                tol = tol * 2 + act_err * 1.001;
              }
              const size_t i = size_t(t * c.rows + r);
              ASSERT_NEAR(yc[i], yr[i], tol) << label(c, isa, act, nt) << " t=" << t << " r=" << r;
            }
        }
      }
    }
  }
  EXPECT_GE(checked_levels, 1);
  ThreadPool::set_global_threads(0);
}

TEST(QuantLinear, Int8ActivationPathIsNotExactButClose) {
  // The int8-activation path must differ from f32 math (else it would not be the integer kernel) yet
  // stay within the activation-rounding bound checked above.
  if (!cpu_quant::int8_act_supported(QuantFormat::Q4_0, Isa::Avx512) || !cpu_quant::isa_supported(Isa::Avx512))
    GTEST_SKIP() << "no avx512 vnni";
  const int64_t N = 8, K = 256;
  const auto wv = randn(N * K, 3);
  Tensor w = Tensor::empty(DType::F32, {N, K});
  std::copy(wv.begin(), wv.end(), w.data<float>());
  const auto q = quantize_weight(w, QuantFormat::Q4_0, {});
  const auto x = randn(K, 5);
  std::vector<float> yf(N), yi(N);
  cpu_quant::quant_linear_cpu_isa(q, x.data(), 1, yf.data(), Isa::Avx512, ActMode::F32);
  cpu_quant::quant_linear_cpu_isa(q, x.data(), 1, yi.data(), Isa::Avx512, ActMode::Int8);
  double diff = 0, norm = 0;
  for (int64_t r = 0; r < N; ++r) {
    diff += std::fabs(double(yf[size_t(r)]) - yi[size_t(r)]);
    norm += std::fabs(yf[size_t(r)]);
  }
  EXPECT_GT(diff, 0.0);
  EXPECT_LT(diff / norm, 0.02);
}

TEST(QuantLinear, ActivationQuantizersAgreeBitForBit) {
  // The SIMD activation quantizers must round exactly like the scalar one (half-even ties, zero blocks,
  // the q4_0 pair order), else the int8 kernels would differ per ISA.
  const int64_t K = 32 * 7;
  auto x = randn(K, 11);
  for (int i = 0; i < 32; ++i) x[size_t(32 + i)] = 0.0f;                        // all-zero block
  for (int i = 0; i < 32; ++i) x[size_t(64 + i)] = (i == 0 ? 127.0f : 0.5f * float(i - 16));  // ties at .5
  x[100] = -3e-39f;                                                            // subnormal
  for (bool pairs : {false, true}) {
    std::vector<int8_t> q0(K), q1(K);
    std::vector<float> d0(K / 32), d1(K / 32), s0(K / 32), s1(K / 32);
    cpu_quant::quantize_act_row_scalar(x.data(), K, pairs, q0.data(), d0.data(), s0.data());
    for (Isa isa : {Isa::Avx2, Isa::Avx512}) {
      if (!cpu_quant::isa_supported(isa) || (isa == Isa::Avx2 && pairs)) continue;
      std::fill(q1.begin(), q1.end(), int8_t(99));
      if (isa == Isa::Avx2) cpu_quant::quantize_act_row_avx2(x.data(), K, q1.data(), d1.data(), s1.data());
      else cpu_quant::quantize_act_row_avx512(x.data(), K, pairs, q1.data(), d1.data(), s1.data());
      EXPECT_EQ(q0, q1) << cpu_quant::isa_name(isa) << " pairs=" << pairs;
      EXPECT_EQ(d0, d1) << cpu_quant::isa_name(isa);
      EXPECT_EQ(s0, s1) << cpu_quant::isa_name(isa);
    }
    // The block scales are amax/127 rounded to f16, as in a GGUF q8_0 block (llama.cpp's activations).
    for (int64_t b = 0; b < K / 32; ++b) {
      float amax = 0;
      for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[size_t(b * 32 + i)]));
      EXPECT_EQ(d0[size_t(b)], f16_to_f32(f32_to_f16(amax / 127.0f))) << "block " << b;
    }
    // Block 2 has d = 127/127 = 1 (both orders keep its first 16 at 64..79): -7.5 -> -8, -6.5 -> -6.
    EXPECT_EQ(q0[64], 127);
    EXPECT_EQ(q0[65], -8);
    EXPECT_EQ(q0[67], -6);
  }
}

// mxfp4 blocks whose e8m0 scale is an edge value: an all-zero block (e = 0: 2^-127, codes 0) and tiny
// values (small exponents), in rows of whole 128-column chunks, at every ISA level against the reference.
TEST(QuantLinear, Mxfp4EdgeScalesEveryIsa) {
  const int64_t N = 4, K = 256;
  auto wv = randn(N * K, 11);
  for (int64_t k = 0; k < K; ++k) wv[size_t(k)] = 0.0f;                      // row 0: every block zero
  for (int64_t k = 0; k < 64; ++k) wv[size_t(K + k)] = 0.0f;                 // row 1: two zero blocks
  for (int64_t k = 0; k < K; ++k) wv[size_t(2 * K + k)] *= 1e-30f;           // row 2: tiny scales
  Tensor w = Tensor::empty(DType::F32, {N, K});
  std::copy(wv.begin(), wv.end(), w.data<float>());
  const auto q = quantize_weight(w, QuantFormat::MXFP4, {});
  EXPECT_EQ(q.scales.data<uint8_t>()[0], 0);  // the all-zero block's e8m0 exponent
  const auto x = randn(K, 12);
  std::vector<float> yr(N);
  quant_linear_ref(q, x.data(), 1, yr.data());
  for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512}) {
    if (!cpu_quant::isa_supported(isa)) continue;
    std::vector<float> yc(N, NAN);
    cpu_quant::quant_linear_cpu_isa(q, x.data(), 1, yc.data(), isa, ActMode::F32);
    EXPECT_EQ(yc[0], 0.0f) << cpu_quant::isa_name(isa);
    for (int64_t r = 1; r < N; ++r)
      EXPECT_NEAR(yc[size_t(r)], yr[size_t(r)], 1e-5 * std::fabs(yr[size_t(r)]) + 1e-37) << cpu_quant::isa_name(isa) << " row " << r;
  }
}

TEST(QuantLinear, UnsupportedIsaThrows) {
  if (cpu_quant::isa_supported(Isa::Avx512)) GTEST_SKIP() << "every level is available here";
  Tensor w = Tensor::empty(DType::F32, {4, 32});
  std::fill(w.data<float>(), w.data<float>() + 128, 0.5f);
  const auto q = quantize_weight(w, QuantFormat::Q8_0, {});
  std::vector<float> x(32, 1.0f), y(4);
  EXPECT_THROW(cpu_quant::quant_linear_cpu_isa(q, x.data(), 1, y.data(), Isa::Avx512, ActMode::F32), Error);
}
