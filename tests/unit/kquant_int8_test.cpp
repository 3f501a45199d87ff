// tests/unit/kquant_int8_test.cpp — K-quant prefill through int8 activations (kquant_int8.h): the integer form
// of every K-quant super-block against the format's reference dequantize; the kernel's vector form of it
// against the scalar one; the AMX kernel bit for bit against the scalar int8 reference on odd shapes (partial
// row groups and token tiles, 1 and 2 threads) and through quant_linear_cpu's dispatch; and the int8 reference
// near the f32 product (the accuracy int8 activations cost).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "backends/cpu/gguf_interleaved.h"
#include "backends/cpu/kquant_int8.h"
#include "backends/cpu/quant_linear_kernels.h"
#include "backends/quant_linear.h"
#include "core/thread_pool.h"
#include "qforge/quant.h"
#include "qforge/status.h"
#include "quant/quant_codecs.h"
#include "test_support.h"

using namespace qforge;
using test::randn;

namespace {
constexpr QuantFormat kFormats[] = {QuantFormat::Q2_K, QuantFormat::Q3_K, QuantFormat::Q4_K, QuantFormat::Q5_K,
                                    QuantFormat::Q6_K};

QuantWeight make_quant(QuantFormat f, int64_t rows, int64_t cols, uint32_t seed) {
  auto v = randn(rows * cols, seed);
  for (size_t i = 0; i < v.size(); i += 97) v[i] *= 6.0f;  // outliers: wide sub-block scales and minimums
  Tensor w = Tensor::empty(DType::F32, {rows, cols});
  std::memcpy(w.raw(), v.data(), v.size() * sizeof(float));
  return quantize_weight(w, f, {});
}

const uint8_t* block_of(const QuantWeight& q, int64_t r, int64_t sb) {
  const int64_t row_bytes = int64_t(q.data.nbytes()) / q.rows;
  return static_cast<const uint8_t*>(q.data.raw()) + r * row_bytes + sb * (row_bytes / (q.cols / 256));
}

std::string name(QuantFormat f) { return std::string(quant_traits(f).name); }
}  // namespace

TEST(KQuantInts, MatchDequantize) {
  for (QuantFormat f : kFormats) {
    const QuantWeight q = make_quant(f, 3, 512, 5);
    std::vector<float> ref(256);
    quant_detail::KQuantInts ki;
    for (int64_t r = 0; r < q.rows; ++r)
      for (int64_t sb = 0; sb < 2; ++sb) {
        dequantize_segment(q, r, 256 * sb, 256, ref.data());
        quant_detail::kquant_ints(f, block_of(q, r, sb), ki);
        float amax = 0;
        for (float v : ref) amax = std::max(amax, std::fabs(v));
        for (int j = 0; j < 256; ++j) {
          const float v = ki.d * float(ki.p[j]) - ki.dmin * float(ki.m[j]);
          ASSERT_NEAR(v, ref[size_t(j)], 1e-5f * amax + 1e-30f) << name(f) << " row " << r << " sb " << sb << " j " << j;
        }
      }
  }
  quant_detail::KQuantInts ki;
  std::vector<uint8_t> blk(256, 0);
  EXPECT_THROW(quant_detail::kquant_ints(QuantFormat::Q4_0, blk.data(), ki), Error);
}

TEST(KQuantAmx, TileRowsMatchInts) {
  if (!cpu_quant::amx_available()) GTEST_SKIP() << "no AMX int8 on this CPU (or QFORGE_CPU_AMX=0)";
  for (QuantFormat f : kFormats) {
    const QuantWeight q = make_quant(f, 4, 768, 9);
    quant_detail::KQuantInts ki;
    int8_t hi[256], lo[256], m[256];
    for (int64_t r = 0; r < q.rows; ++r)
      for (int64_t sb = 0; sb < 3; ++sb) {
        float d = -1, dmin = -1;
        cpu_quant::kquant_tile_rows(q, r, sb, hi, lo, m, d, dmin);
        quant_detail::kquant_ints(f, block_of(q, r, sb), ki);
        ASSERT_EQ(d, ki.d) << name(f);
        ASSERT_EQ(dmin, ki.dmin) << name(f);
        for (int j = 0; j < 256; ++j) {
          ASSERT_TRUE(lo[j] >= 0 && lo[j] < 64) << name(f) << " j " << j;
          ASSERT_EQ(64 * int(hi[j]) + int(lo[j]), int(ki.p[j])) << name(f) << " row " << r << " sb " << sb << " j " << j;
          ASSERT_EQ(m[j], ki.m[j]) << name(f) << " j " << j;
        }
      }
  }
}

// Partial row groups (rows % 16), one and several super-blocks, token counts around the tile of 16.
TEST(KQuantAmx, MatchesInt8ReferenceBitForBit) {
  if (!cpu_quant::amx_available()) GTEST_SKIP() << "no AMX int8 on this CPU (or QFORGE_CPU_AMX=0)";
  struct Shape { int64_t rows, cols; };
  const Shape shapes[] = {{1, 256}, {17, 768}, {40, 512}};
  for (int threads : {1, 2}) {
    ThreadPool::set_global_threads(threads);
    for (QuantFormat f : kFormats)
      for (const auto& s : shapes) {
        const QuantWeight q = make_quant(f, s.rows, s.cols, 21);
        for (int64_t nt : {1, 16, 33}) {
          const auto x = randn(nt * s.cols, 40 + uint32_t(nt));
          std::vector<float> ref(size_t(nt * s.rows), -1e30f), y(ref.size(), -1e30f);
          cpu_quant::kquant_linear_int8_ref(q, x.data(), nt, ref.data());
          cpu_quant::kquant_linear_amx(q, x.data(), nt, y.data());
          const std::string what = name(f) + " " + std::to_string(s.rows) + "x" + std::to_string(s.cols) +
                                   " nt=" + std::to_string(nt) + " threads=" + std::to_string(threads);
          for (size_t i = 0; i < y.size(); ++i) ASSERT_EQ(y[i], ref[i]) << what << " at " << i;
          if (nt >= cpu_quant::kKQuantAmxMinTokens) {  // the dispatch reaches it
            std::vector<float> y2(y.size(), -1e30f);
            quant_linear_cpu(q, x.data(), nt, y2.data());
            ASSERT_EQ(0, std::memcmp(y.data(), y2.data(), y.size() * sizeof(float))) << what;
          }
        }
      }
  }
  ThreadPool::set_global_threads(0);
  EXPECT_THROW(cpu_quant::kquant_linear_amx(make_quant(QuantFormat::Q4_0, 2, 256, 1), randn(256, 1).data(), 1,
                                           std::vector<float>(2).data()),
               Error);
}

// The lane kernels for CPUs without AMX (AVX-512 VNNI, AVX2): every token-tile remainder, partial row groups,
// 1 and 2 threads, bit for bit against the scalar reference, and through quant_linear_cpu's dispatch where it
// picks that kernel (QFORGE_CPU_ISA caps the level).
TEST(KQuantLanes, MatchInt8ReferenceBitForBit) {
  using Kernel = void (*)(const QuantWeight&, const float*, int64_t, float*);
  using Applies = bool (*)(const QuantWeight&, int64_t);
  struct Level { cpu_quant::Isa isa; Kernel kernel; Applies applies; };
  const Level levels[] = {{cpu_quant::Isa::Avx512, cpu_quant::kquant_linear_avx512, cpu_quant::kquant_avx512_applies},
                          {cpu_quant::Isa::Avx2, cpu_quant::kquant_linear_avx2, cpu_quant::kquant_avx2_applies}};
  struct Shape { int64_t rows, cols; };
  const Shape shapes[] = {{1, 256}, {17, 768}, {40, 512}};
  int ran = 0;
  for (const Level& l : levels) {
    if (!cpu_quant::isa_supported(l.isa)) continue;
    ++ran;
    for (int threads : {1, 2}) {
      ThreadPool::set_global_threads(threads);
      for (QuantFormat f : kFormats)
        for (const auto& s : shapes) {
          const QuantWeight q = make_quant(f, s.rows, s.cols, 22);
          for (int64_t nt : {1, 3, 4, 8, 13, 19}) {
            const auto x = randn(nt * s.cols, 50 + uint32_t(nt));
            std::vector<float> ref(size_t(nt * s.rows), -1e30f), y(ref.size(), -1e30f);
            cpu_quant::kquant_linear_int8_ref(q, x.data(), nt, ref.data());
            l.kernel(q, x.data(), nt, y.data());
            const std::string what = std::string(cpu_quant::isa_name(l.isa)) + " " + name(f) + " " +
                                     std::to_string(s.rows) + "x" + std::to_string(s.cols) + " nt=" + std::to_string(nt) +
                                     " threads=" + std::to_string(threads);
            for (size_t i = 0; i < y.size(); ++i) ASSERT_EQ(y[i], ref[i]) << what << " at " << i;
            if (l.applies(q, nt) && !cpu_quant::kquant_amx_applies(q, nt)) {
              std::vector<float> y2(y.size(), -1e30f);
              quant_linear_cpu(q, x.data(), nt, y2.data());
              ASSERT_EQ(0, std::memcmp(y.data(), y2.data(), y.size() * sizeof(float))) << what;
            }
          }
        }
    }
    EXPECT_FALSE(l.applies(make_quant(QuantFormat::Q4_K, 2, 256, 1), 3));  // decode kernels take < 4 tokens
  }
  ThreadPool::set_global_threads(0);
  if (ran == 0) GTEST_SKIP() << "no AVX2 on this CPU";
}

// Int8 activations per super-block cost a small, bounded error against the f32 product (what llama.cpp's
// K-quant dot products cost too); a dropped minimum or scale term would be far outside it.
TEST(KQuantAmx, Int8ReferenceNearF32Product) {
  for (QuantFormat f : kFormats) {
    const int64_t rows = 24, cols = 1024, nt = 5;
    const QuantWeight q = make_quant(f, rows, cols, 33);
    const auto x = randn(nt * cols, 34);
    std::vector<float> ref(size_t(nt * rows)), y(ref.size());
    quant_linear_ref(q, x.data(), nt, ref.data());
    cpu_quant::kquant_linear_int8_ref(q, x.data(), nt, y.data());
    double e2 = 0, r2 = 0;
    for (size_t i = 0; i < y.size(); ++i) {
      e2 += double(y[i] - ref[i]) * double(y[i] - ref[i]);
      r2 += double(ref[i]) * double(ref[i]);
    }
    EXPECT_LT(std::sqrt(e2 / r2), 0.01) << name(f);
  }
}
