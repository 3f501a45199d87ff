// benches/llama_cpp/gguf_block_goldens.cpp — writes tests/data/gguf_blocks/goldens.bin: llama.cpp's own
// reference quantizers (ggml_get_type_traits(t)->from_float_ref) and dequantizers (->to_float) applied
// to 2,048 fixed test values, for every GGUF block type qforge implements. The unit test
// GgufBlocks.MatchLlamaCppGoldens checks qforge's codecs against this file byte for byte.
// Build and run through benches/run_peer_bench.sh goldens (links the npm llama.cpp libraries).
// File: "QFGB" u32 version=1, u32 n, f32 x[n]; then per type: u32 ggml_type, u32 nbytes, u8 q[nbytes],
// f32 y[n]; ended by u32 0xFFFFFFFF.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#include "ggml.h"

namespace {
// The test values: 8 rows of 256 with different shapes of distribution (seeded, reproducible here).
std::vector<float> test_values() {
  std::vector<float> x(2048);
  uint64_t s = 0x9E3779B97F4A7C15ull;
  auto uni = [&] {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    return float((s >> 11) * (1.0 / 9007199254740992.0));
  };
  auto gauss = [&] { return std::sqrt(-2.0f * std::log(uni() + 1e-12f)) * std::cos(6.2831853f * uni()); };
  for (int i = 0; i < 2048; ++i) {
    const int row = i / 256, j = i % 256;
    float v = 0.02f * gauss();
    switch (row) {
      case 1: v = (j % 37 == 0) ? 0.5f * gauss() : v; break;          // outliers
      case 2: v = j < 128 ? 0.0f : v; break;                           // half zero
      case 3: v = 1e-3f * gauss() - 2e-3f; break;                      // small, shifted
      case 4: v = float(j % 16 - 8) * 0.125f; break;                   // exact grid
      case 5: v = j < 16 ? 3.0f : (j < 32 ? -3.0f : 0.01f * gauss()); break;
      case 6: v = 60000.0f * (uni() - 0.5f); break;                    // near the f16 range
      case 7: v = j % 2 ? 1e-20f : -1e-20f; break;                     // below GROUP_MAX_EPS-ish
      default: break;
    }
    x[size_t(i)] = v;
  }
  return x;
}
}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: gguf_block_goldens OUT.bin\n");
    return 2;
  }
  const auto x = test_values();
  const uint32_t n = uint32_t(x.size());
  FILE* f = std::fopen(argv[1], "wb");
  if (!f) return 1;
  const uint32_t version = 1;
  std::fwrite("QFGB", 1, 4, f);
  std::fwrite(&version, 4, 1, f);
  std::fwrite(&n, 4, 1, f);
  std::fwrite(x.data(), 4, n, f);
  for (ggml_type t : {GGML_TYPE_Q4_0, GGML_TYPE_Q8_0, GGML_TYPE_Q5_0, GGML_TYPE_Q4_K, GGML_TYPE_Q6_K, GGML_TYPE_Q4_1,
                      GGML_TYPE_Q5_1, GGML_TYPE_Q5_K, GGML_TYPE_Q2_K, GGML_TYPE_Q3_K}) {
    const auto* tr = ggml_get_type_traits(t);
    const size_t nbytes = ggml_row_size(t, n);
    std::vector<uint8_t> q(nbytes);
    std::vector<float> y(n);
    tr->from_float_ref(x.data(), q.data(), n);
    tr->to_float(q.data(), y.data(), n);
    const uint32_t tt = uint32_t(t), nb = uint32_t(nbytes);
    std::fwrite(&tt, 4, 1, f);
    std::fwrite(&nb, 4, 1, f);
    std::fwrite(q.data(), 1, nbytes, f);
    std::fwrite(y.data(), 4, n, f);
    std::printf("%s: %zu bytes\n", tr->type_name, nbytes);
  }
  const uint32_t end = 0xFFFFFFFFu;
  std::fwrite(&end, 4, 1, f);
  return std::fclose(f) == 0 ? 0 : 1;
}
