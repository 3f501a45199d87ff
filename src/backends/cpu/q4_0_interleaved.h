// src/backends/cpu/q4_0_interleaved.h — load-time repack of GGUF q4_0 weights for CPU decode: rows in
// groups of 8, per group and block of 32 columns the 8 fp16 scales (16 B) then the 8 rows' 16 nibble
// bytes (128 B), 144 B per group-block; the groups follow each other, so a thread streams one
// sequential run of memory. The last group is padded with zero rows. Decode and prefill run an
// int8-activation kernel over this layout (AVX-512 VNNI / AVX2; prefill splits each block's nibbles once
// for a tile of 8 / 2 tokens).
#pragma once
#include <cstdint>
#include <memory>

#include "backends/cpu/quant_linear_kernels.h"
#include "qforge/quant.h"

namespace qforge::cpu_quant {

inline constexpr int kQ4Interleave = 8;         // rows per group
inline constexpr int64_t kQ4GroupBlockBytes = 144;  // 8 x fp16 scale + 8 x 16 nibble bytes

struct Q4_0Interleaved {
  int64_t rows = 0, cols = 0;  // the QuantWeight's shape (cols % 32 == 0)
  int64_t groups = 0;          // ceil(rows / 8)
  std::shared_ptr<uint8_t> bytes;  // groups * (cols/32) * 144, host_alloc'ed (MemCategory::Other)
  size_t nbytes = 0;
};

// Builds the interleaved copy of a q4_0 weight (throws qforge::Error if w is not q4_0 with whole blocks).
Q4_0Interleaved repack_q4_0(const QuantWeight& w);
// Reads row r, block b back from the interleaved copy (tests): scale bits and 16 nibble bytes.
void interleaved_block(const Q4_0Interleaved& p, int64_t r, int64_t b, uint16_t& d, uint8_t qs[16]);

// The kernels' arguments: int8 activations in natural block order (quantize_act_row_*, pairs off).
struct Q4x8Args {
  const uint8_t* data = nullptr;
  int64_t rows = 0, nb = 0;  // blocks of 32 per row
  const int8_t* xq = nullptr;
  const float* dx = nullptr;    // [n_tokens, nb]
  const float* dsum = nullptr;  // [n_tokens, nb]
  int64_t n_tokens = 0;
  float* y = nullptr;  // y[t * rows + r]
};
// Writes the 8 row results of group g for token t (rows past `rows` in the last group are not written).
inline void store_group(const Q4x8Args& a, int64_t g, int64_t t, const float (&out)[8]) {
  float* y = a.y + t * a.rows;
  for (int r = 0; r < kQ4Interleave && g * kQ4Interleave + r < a.rows; ++r) y[g * kQ4Interleave + r] = out[r];
}
// Groups [g0, g1) for every token (rows past `rows` in the last group are not written).
void q4x8_groups_avx512(const Q4x8Args& a, int64_t g0, int64_t g1);
void q4x8_groups_avx2(const Q4x8Args& a, int64_t g0, int64_t g1);

// y[n_tokens, rows] = x W^T over the interleaved copy, threaded over groups; isa Avx512 or Avx2
// (throws qforge::Error if the CPU lacks it). Any n_tokens.
void q4_0_interleaved_linear(const Q4_0Interleaved& p, const float* x, int64_t n_tokens, float* y, Isa isa);

// Whether the cpu backend repacks q4_0 at prepare(): an AVX2+ CPU and QFORGE_CPU_Q4_0_REPACK not "0".
bool q4_0_repack_enabled();

}  // namespace qforge::cpu_quant
