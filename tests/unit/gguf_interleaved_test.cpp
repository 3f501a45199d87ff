// tests/unit/gguf_interleaved_test.cpp — the cpu backend's q4_0 / q8_0 repack (gguf_interleaved.h): the
// repacked bytes read back block for block; the interleaved kernels (each ISA this CPU has, 1 and 2
// threads, token counts that hit every tile size and remainder) against quant_linear_ref on odd shapes
// (rows not a multiple of 8, one block, odd block counts, > 256 KB so several chunks run); and the
// backend's prepare() + linear() as the model uses them.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "backends/cpu/gguf_interleaved.h"
#include "backends/quant_linear.h"
#include "backends/ref/ref_ops.h"
#include "core/thread_pool.h"
#include "model/weights.h"
#include "qforge/memory.h"
#include "qforge/memory_estimate.h"
#include "qforge/model_config.h"
#include "qforge/status.h"
#include "test_support.h"
#include "quant/quant_codecs.h"

using namespace qforge;
using test::randn;
using cpu_quant::Isa;

namespace {
QuantWeight make_quant(QuantFormat f, int64_t rows, int64_t cols, uint32_t seed) {
  auto v = randn(rows * cols, seed);
  Tensor w = Tensor::empty(DType::F32, {rows, cols});
  std::memcpy(w.raw(), v.data(), v.size() * sizeof(float));
  return quantize_weight(w, f, {});
}
QuantWeight make_q4_0(int64_t rows, int64_t cols, uint32_t seed) { return make_quant(QuantFormat::Q4_0, rows, cols, seed); }
constexpr QuantFormat kFormats[] = {QuantFormat::Q4_0, QuantFormat::Q8_0};

// |y - y_ref| bound: f32 summation (2 K 2^-24 sum|w x|) plus the int8 activation rounding
// (|dx| <= d_b (1/2 + 127 2^-11) per element, d_b = amax of the block / 127, the scale rounded to f16).
void expect_close(const QuantWeight& q, const float* x, int64_t nt, const float* y, const std::string& what) {
  const int64_t N = q.rows, K = q.cols;
  std::vector<float> yr(size_t(nt * N)), deq(size_t(N * K));
  quant_linear_ref(q, x, nt, yr.data());
  dequantize_rows(q, 0, N, deq.data());
  for (int64_t t = 0; t < nt; ++t)
    for (int64_t r = 0; r < N; ++r) {
      double mag = 0, act = 0;
      for (int64_t k = 0; k < K; ++k) {
        const double w = std::fabs(double(deq[size_t(r * K + k)]));
        mag += w * std::fabs(double(x[t * K + k]));
        float amax = 0;
        for (int64_t i = k / 32 * 32; i < k / 32 * 32 + 32; ++i) amax = std::max(amax, std::fabs(x[t * K + i]));
        act += w * double(amax / 127.0f) * (0.5 + 127.0 / 2048);
      }
      const double tol = 4.0 * double(K) * std::ldexp(1.0, -24) * mag + act * 1.001 + 1e-30;
      ASSERT_NEAR(y[t * N + r], yr[size_t(t * N + r)], tol) << what << " t=" << t << " r=" << r;
    }
}

std::vector<Isa> isas() {
  std::vector<Isa> v;
  for (Isa i : {Isa::Avx2, Isa::Avx512})
    if (cpu_quant::isa_supported(i)) v.push_back(i);
  return v;
}

struct Shape { int64_t rows, cols; };
const Shape kShapes[] = {{1, 32}, {7, 64}, {8, 96}, {9, 160}, {13, 1088}, {37, 2080}, {1030, 1024}, {16, 32}};
}  // namespace

TEST(QuantLinearInterleaved, RepackReadsBackEveryBlock) {
  for (QuantFormat f : kFormats)
    for (const auto& s : kShapes) {
      const QuantWeight q = make_quant(f, s.rows, s.cols, 3);
      const auto p = cpu_quant::repack_interleaved(q);
      const bool q8 = f == QuantFormat::Q8_0;
      const int64_t src_block = q8 ? 34 : 18, code_bytes = src_block - 2;
      ASSERT_EQ(p.groups, (s.rows + 7) / 8);
      ASSERT_EQ(p.nbytes, size_t(p.groups * (s.cols / 32) * (q8 ? 272 : 144)));
      const auto* src = static_cast<const uint8_t*>(q.data.raw());
      for (int64_t r = 0; r < s.rows; ++r)
        for (int64_t b = 0; b < s.cols / 32; ++b) {
          uint16_t d;
          uint8_t qs[32];
          cpu_quant::interleaved_block(p, r, b, d, qs);
          const uint8_t* o = src + (r * (s.cols / 32) + b) * src_block;
          uint16_t od;
          std::memcpy(&od, o, 2);
          ASSERT_EQ(d, od) << q8 << " " << s.rows << "x" << s.cols << " r=" << r << " b=" << b;
          ASSERT_EQ(0, std::memcmp(qs, o + 2, size_t(code_bytes))) << q8 << " " << s.rows << "x" << s.cols << " r=" << r;
        }
      for (int64_t r = s.rows; r < p.groups * 8; ++r)  // padded rows are zero
        for (int64_t b = 0; b < s.cols / 32; ++b) {
          uint16_t d;
          uint8_t qs[32];
          cpu_quant::interleaved_block(p, r, b, d, qs);
          ASSERT_EQ(d, 0);
        }
    }
  EXPECT_THROW(cpu_quant::repack_interleaved(make_quant(QuantFormat::Q4_K, 4, 256, 1)), Error);
}

TEST(QuantLinearInterleaved, KernelsMatchReference) {
  for (int threads : {1, 2}) {
    ThreadPool::set_global_threads(threads);
    for (Isa isa : isas())
      for (QuantFormat f : kFormats)
      for (const auto& s : kShapes) {
        const QuantWeight q = make_quant(f, s.rows, s.cols, 11);
        const auto p = cpu_quant::repack_interleaved(q);
        for (int64_t nt : {1, 2, 3, 4, 5, 6, 7, 9, 13}) {
          const auto x = randn(nt * s.cols, 17 + uint32_t(nt));
          std::vector<float> y(size_t(nt * s.rows), -1e30f);
          cpu_quant::interleaved_linear(p, x.data(), nt, y.data(), isa, /*allow_amx=*/false);
          expect_close(q, x.data(), nt, y.data(),
                       std::string(quant_traits(f).name) + " " + std::string(cpu_quant::isa_name(isa)) + " " + std::to_string(s.rows) + "x" +
                           std::to_string(s.cols) + " nt=" + std::to_string(nt) + " threads=" + std::to_string(threads));
        }
      }
  }
  ThreadPool::set_global_threads(0);
}

// The AMX prefill kernel: token tiles of 16 with a padded remainder, row-group pairs with a missing second
// group (odd group counts) and partial last groups, odd block counts (a lone last block), 1 and 2 threads.
TEST(QuantLinearInterleaved, AmxMatchesReference) {
  if (!cpu_quant::amx_available()) GTEST_SKIP() << "no AMX int8 on this CPU (or QFORGE_CPU_AMX=0)";
  for (int threads : {1, 2}) {
    ThreadPool::set_global_threads(threads);
    for (QuantFormat f : kFormats)
      for (const auto& s : kShapes) {
        const QuantWeight q = make_quant(f, s.rows, s.cols, 23);
        const auto p = cpu_quant::repack_interleaved(q);
        for (int64_t nt : {1, 15, 16, 17, 40}) {
          const auto x = randn(nt * s.cols, 31 + uint32_t(nt));
          std::vector<float> y(size_t(nt * s.rows), -1e30f);
          cpu_quant::interleaved_linear_amx(p, x.data(), nt, y.data());
          expect_close(q, x.data(), nt, y.data(),
                       std::string(quant_traits(f).name) + " amx " + std::to_string(s.rows) + "x" + std::to_string(s.cols) +
                           " nt=" + std::to_string(nt) + " threads=" + std::to_string(threads));
          if (nt >= cpu_quant::kAmxMinTokens) {  // and the dispatch reaches it
            std::vector<float> y2(y.size(), -1e30f);
            cpu_quant::interleaved_linear(p, x.data(), nt, y2.data(), Isa::Avx512);
            ASSERT_EQ(0, std::memcmp(y.data(), y2.data(), y.size() * sizeof(float))) << s.rows << "x" << s.cols;
          }
        }
      }
  }
  ThreadPool::set_global_threads(0);
}

// As the model uses it: prepare() attaches the interleaved copy to the q4_0 and q8_0 linears of the part
// (not to others: nf4 here), linear() with 1, 3 and 5 tokens (decode and prefill both on the interleaved copy), with and
// without the residual accumulate, several layers in one call.
TEST(QuantLinearInterleaved, BackendPrepareAndLinear) {
  if (!cpu_quant::interleaved_repack_enabled()) GTEST_SKIP() << "repack off (no AVX2 or QFORGE_CPU_REPACK=0)";
  ThreadPool::set_global_threads(2);
  const int64_t hidden = 96, inter = 160;
  ModelWeights w;
  w.layers.resize(2);
  auto set = [](Linear& l, int64_t out, int64_t in, uint32_t seed) {
    l.in = in;
    l.out = out;
    l.qweight = make_q4_0(out, in, seed);
  };
  for (size_t i = 0; i < 2; ++i) {
    auto& L = w.layers[i];
    set(L.q, hidden, hidden, 1 + uint32_t(i));
    set(L.k, 13, hidden, 3);
    set(L.v, 13, hidden, 4);
    set(L.o, hidden, hidden, 5);
    set(L.gate, inter, hidden, 6);
    set(L.up, inter, hidden, 7);
    set(L.down, hidden, inter, 8);
  }
  w.layers[1].k.qweight = quantize_weight(
      [&] {
        auto v = randn(13 * hidden, 9);
        Tensor t = Tensor::empty(DType::F32, {13, hidden});
        std::memcpy(t.raw(), v.data(), v.size() * sizeof(float));
        return t;
      }(),
      QuantFormat::Q8_0, {});
  w.layers[1].v.qweight = make_quant(QuantFormat::NF4, 13, hidden, 12);
  set(w.lm_head, 1001, hidden, 10);
  const auto& L = w.layers[1];
  // The reference reads the original bytes, which prepare() releases from the repacked linears: keep copies.
  const std::vector<QuantWeight> orig = {L.q.qweight, L.k.qweight, L.v.qweight, L.gate.qweight, w.lm_head.qweight,
                                         w.layers[0].q.qweight};
  const std::vector<QuantWeight> keep = {L.o.qweight, L.up.qweight, L.down.qweight};  // alive: see the byte count
  const int64_t weights_before = MemoryAccounting::get(MemDevice::Host, MemCategory::Weights).current;
  auto be = make_backend("cpu");
  be->set_model_part({1, 2, false, true});  // layer 1 and the head only
  be->prepare(w, ModelConfig{});
  EXPECT_FALSE(w.layers[0].q.backend_data) << "layer 0 is outside the part";
  EXPECT_FALSE(w.layers[0].q.released());
  EXPECT_TRUE(w.layers[1].q.backend_data);
  EXPECT_TRUE(w.layers[1].k.backend_data) << "q8_0 is repacked";
  EXPECT_FALSE(w.layers[1].v.backend_data) << "nf4 is not repacked";
  EXPECT_FALSE(w.layers[1].v.released());
  EXPECT_TRUE(w.lm_head.backend_data);
  // The originals are released (shape and format stay; weight_bytes() now counts the copy), and other readers
  // get a clear error instead of reading freed bytes.
  for (const Linear* l : std::initializer_list<const Linear*>{&L.q, &L.k, &L.o, &L.down, &w.lm_head}) {
    EXPECT_TRUE(l->released()) << l->name;
    EXPECT_FALSE(l->qweight.data.defined()) << l->name;
    EXPECT_EQ(l->qweight.rows, l->out);
    EXPECT_GE(l->weight_bytes(), quant_storage_bytes(l->qweight.format, l->qweight.params, l->out, l->in));
  }
  EXPECT_EQ(L.q.weight_bytes(), quant_storage_bytes(QuantFormat::Q4_0, {}, hidden, hidden)) << "96 rows: no padding";
  {
    std::vector<float> y(static_cast<size_t>(hidden)), x1(static_cast<size_t>(hidden), 1.f);
    EXPECT_THROW(ref::linear(L.q, x1.data(), 1, y.data()), Error);
  }
  // The copies are Weights now; the released originals are still held by `orig` here, so the category grew by
  // the copies' bytes.
  size_t copies = 0;
  for (const Linear* l : std::initializer_list<const Linear*>{&L.q, &L.k, &L.o, &L.gate, &L.up, &L.down, &w.lm_head})
    copies += l->replaced_bytes;
  EXPECT_EQ(MemoryAccounting::get(MemDevice::Host, MemCategory::Weights).current - weights_before, int64_t(copies));
  // A second cpu backend over the same weights runs the released linears on the existing copies.
  auto be2 = make_backend("cpu");
  be2->set_model_part({1, 2, false, true});
  be2->prepare(w, ModelConfig{});
  for (int64_t n : {1, 3, 5})
    for (bool acc : {false, true}) {
      const auto x = randn(n * hidden, 20 + uint32_t(n));
      const Linear* ls[] = {&L.q, &L.k, &L.v, &L.gate, &w.lm_head, &w.layers[0].q};
      std::vector<std::vector<float>> ys;
      std::vector<float*> yp;
      for (const Linear* l : ls) ys.emplace_back(size_t(n * l->out), acc ? 0.0f : -1e30f);
      for (auto& y : ys) yp.push_back(y.data());
      (n == 3 ? be2 : be)->linear(ls, LinearInput{x.data()}, n, yp, acc);
      for (size_t i = 0; i < std::size(ls); ++i)
        expect_close(orig[i], x.data(), n, ys[i].data(), ls[i]->name + " #" + std::to_string(i) +
                                                             " n=" + std::to_string(n) + " acc=" + std::to_string(acc));
    }
  ThreadPool::set_global_threads(0);
}
