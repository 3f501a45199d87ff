// tests/unit/gguf_blocks_test.cpp — qforge's GGUF block codecs (q4_0, q4_1, q5_0, q5_1, q8_0, q2_k..q6_k) against
// llama.cpp's own reference quantizers and dequantizers, byte for byte and bit for bit, on the 2,048
// test values of tests/data/gguf_blocks/goldens.bin (written by benches/llama_cpp/gguf_block_goldens.cpp
// from the npm llama.cpp libraries); plus the code accessors and the Q5_0 / Q6_K edge blocks.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <vector>

#include "qforge/quant.h"
#include "qforge/status.h"
#include "quant/quant_codecs.h"
#include "test_support.h"

using namespace qforge;
using namespace qforge::quant_detail;

namespace {
struct Goldens {
  std::vector<float> x;
  struct Entry { std::vector<uint8_t> q; std::vector<float> y; };
  std::map<uint32_t, Entry> by_type;  // ggml type id
};

Goldens read_goldens() {
  const auto path = test::source_dir() / "tests/data/gguf_blocks/goldens.bin";
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open " + path.string());
  auto u32 = [&] {
    uint32_t v = 0;
    f.read(reinterpret_cast<char*>(&v), 4);
    if (!f) throw std::runtime_error(path.string() + ": truncated");
    return v;
  };
  char magic[4];
  f.read(magic, 4);
  if (std::memcmp(magic, "QFGB", 4) != 0 || u32() != 1) throw std::runtime_error(path.string() + ": bad header");
  Goldens g;
  const uint32_t n = u32();
  g.x.resize(n);
  f.read(reinterpret_cast<char*>(g.x.data()), std::streamsize(4 * n));
  for (uint32_t t = u32(); t != 0xFFFFFFFFu; t = u32()) {
    auto& e = g.by_type[t];
    e.q.resize(u32());
    f.read(reinterpret_cast<char*>(e.q.data()), std::streamsize(e.q.size()));
    e.y.resize(n);
    f.read(reinterpret_cast<char*>(e.y.data()), std::streamsize(4 * n));
  }
  if (!f) throw std::runtime_error(path.string() + ": truncated");
  return g;
}

uint32_t bits(float v) {
  uint32_t u;
  std::memcpy(&u, &v, 4);
  return u;
}
}  // namespace

TEST(GgufBlocks, MatchLlamaCppGoldens) {
  const Goldens g = read_goldens();
  const std::pair<QuantFormat, uint32_t> formats[] = {
      {QuantFormat::Q4_0, 2}, {QuantFormat::Q4_1, 3},  {QuantFormat::Q5_0, 6},  {QuantFormat::Q5_1, 7},
      {QuantFormat::Q8_0, 8}, {QuantFormat::Q2_K, 10}, {QuantFormat::Q3_K, 11}, {QuantFormat::Q4_K, 12},
      {QuantFormat::Q5_K, 13}, {QuantFormat::Q6_K, 14}};
  ASSERT_EQ(g.x.size(), 2048u);
  for (auto [fmt, type] : formats) {
    SCOPED_TRACE(std::string(quant_traits(fmt).name));
    ASSERT_TRUE(g.by_type.count(type));
    const auto& want = g.by_type.at(type);
    // The 2,048 values as 8 rows of 256: the blocks are laid out row after row, as in the golden file.
    Tensor x = Tensor::view(DType::F32, {8, 256}, const_cast<float*>(g.x.data()), nullptr);
    QuantWeight q = quantize_weight(x, fmt, {});
    ASSERT_EQ(q.data.nbytes(), want.q.size());
    const uint8_t* got = q.data.data<uint8_t>();
    size_t first_diff = want.q.size();
    for (size_t i = 0; i < want.q.size() && first_diff == want.q.size(); ++i)
      if (got[i] != want.q[i]) first_diff = i;
    EXPECT_EQ(first_diff, want.q.size()) << "first differing byte";
    // Dequantize llama.cpp's bytes (not ours), so a quantizer bug cannot hide a dequantizer bug.
    std::memcpy(q.data.data<uint8_t>(), want.q.data(), want.q.size());
    std::vector<float> y(2048);
    dequantize_rows(q, 0, 8, y.data());
    int bad = 0;
    for (size_t i = 0; i < y.size(); ++i) bad += bits(y[i]) != bits(want.y[i]);
    EXPECT_EQ(bad, 0);
  }
}

TEST(GgufBlocks, CodeAccessorsMatchDequantize) {
  // Random bytes are valid Q5_0 / Q6_K blocks (d aside): every code accessor must agree with the block
  // dequantizer, element by element.
  std::mt19937 rng(5);
  for (int rep = 0; rep < 20; ++rep) {
    BlockQ5_0 b5;
    BlockQ6_K b6;
    auto* p5 = reinterpret_cast<uint8_t*>(&b5);
    auto* p6 = reinterpret_cast<uint8_t*>(&b6);
    for (size_t i = 0; i < sizeof b5; ++i) p5[i] = uint8_t(rng());
    for (size_t i = 0; i < sizeof b6; ++i) p6[i] = uint8_t(rng());
    b5.d = f32_to_f16(0.5f);
    b6.d = f32_to_f16(0.25f);
    float y5[32], y6[256];
    dequantize_block_q5_0(b5, y5);
    dequantize_block_q6_k(b6, y6);
    for (int j = 0; j < 32; ++j) EXPECT_EQ(y5[j], float(q5_0_code(b5, j) - 16) * 0.5f) << j;
    for (int j = 0; j < 256; ++j) EXPECT_EQ(y6[j], 0.25f * float(b6.scales[j / 16]) * float(q6_k_code(b6, j) - 32)) << j;
    BlockQ5_K b5k;
    auto* p5k = reinterpret_cast<uint8_t*>(&b5k);
    for (size_t i = 0; i < sizeof b5k; ++i) p5k[i] = uint8_t(rng());
    b5k.d = f32_to_f16(0.5f);
    b5k.dmin = f32_to_f16(0.125f);
    float y5k[256];
    dequantize_block_q5_k(b5k, y5k);
    for (int j = 0; j < 256; ++j) {
      uint8_t sc, m;
      q4_k_scale_min(j / 32, b5k.scales, sc, m);
      EXPECT_EQ(y5k[j], 0.5f * float(sc) * float(q5_k_code(b5k, j)) - 0.125f * float(m)) << j;
    }
  }
}

TEST(GgufBlocks, Q6KEdgeBlocks) {
  // All-zero super-block: every byte zero, decodes to zeros.
  std::vector<float> z(256, 0.0f);
  BlockQ6_K b;
  std::memset(&b, 0xAB, sizeof b);
  quantize_block_q6_k(z.data(), b);
  const auto* p = reinterpret_cast<const uint8_t*>(&b);
  for (size_t i = 0; i < sizeof b; ++i) EXPECT_EQ(p[i], 0) << i;
  // A block of one repeated value per 16 is exact: every sub-block's codes are +-32 steps of its scale.
  std::vector<float> x(256);
  for (int j = 0; j < 256; ++j) x[size_t(j)] = float(j / 16 + 1) * 0.125f;
  quantize_block_q6_k(x.data(), b);
  float y[256];
  dequantize_block_q6_k(b, y);
  for (int j = 0; j < 256; ++j) EXPECT_NEAR(y[j], x[size_t(j)], 0.02f * x[size_t(j)]) << j;
  // Q5_0: the most negative value maps to code 0 and d = max / -16.
  float v[32];
  for (int j = 0; j < 32; ++j) v[j] = float(j - 16) * 0.25f;  // max |v| = 4 at j = 0 (negative)
  BlockQ5_0 b5;
  quantize_block_q5_0(v, b5);
  EXPECT_EQ(b5.d, f32_to_f16(0.25f));
  EXPECT_EQ(q5_0_code(b5, 0), 0);
  float y5[32];
  dequantize_block_q5_0(b5, y5);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(y5[j], v[j]) << j;
}

TEST(GgufBlocks, RowsMustBeWholeBlocks) {
  Tensor x = Tensor::empty(DType::F32, {2, 288});
  std::fill(x.data<float>(), x.data<float>() + 576, 0.5f);
  EXPECT_THROW(quantize_weight(x, QuantFormat::Q6_K, {}), Error);
  EXPECT_NO_THROW(quantize_weight(x, QuantFormat::Q5_0, {}));
}
