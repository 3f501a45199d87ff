// src/backends/cpu/gguf_interleaved.h — load-time repack of GGUF q4_0 and q8_0 weights for the CPU: rows
// in groups of 8, per group and block of 32 columns the 8 fp16 scales (16 B) then the 8 rows' code bytes
// (q4_0: 16 nibble bytes each, 144 B per group-block; q8_0: 32 int8 each, 272 B); the groups follow each
// other, so a thread streams one sequential run of memory. The last group is padded with zero rows.
// Decode and prefill run an int8-activation kernel over this layout (AVX-512 VNNI / AVX2), which splits
// or flips each block's codes once for a tile of tokens (prefill reuses them from registers); prefill of
// 16+ tokens runs on AMX tiles where the CPU has them (gguf_interleaved_amx.cpp).
#pragma once
#include <xmmintrin.h>

#include <cstdint>
#include <memory>
#include <type_traits>

#include "backends/cpu/quant_linear_kernels.h"
#include "qforge/quant.h"

namespace qforge::cpu_quant {

inline constexpr int kRowGroup = 8;                 // rows per group
inline constexpr int64_t kQ4GroupBlockBytes = 144;  // 8 x fp16 scale + 8 x 16 nibble bytes
inline constexpr int64_t kQ8GroupBlockBytes = 272;  // 8 x fp16 scale + 8 x 32 int8

struct GgufInterleaved {
  QuantFormat format = QuantFormat::None;  // Q4_0 or Q8_0
  int64_t rows = 0, cols = 0;  // the QuantWeight's shape (cols % 32 == 0)
  int64_t groups = 0;          // ceil(rows / 8)
  int64_t group_block_bytes = 0;
  std::shared_ptr<uint8_t> bytes;  // groups * (cols/32) * group_block_bytes, host_alloc'ed (MemCategory::Weights:
                                   // the cpu backend releases the original bytes once the copy exists)
  size_t nbytes = 0;
};

// Whether the CPU kernels read an interleaved copy of weights in format f.
inline bool interleavable(QuantFormat f) { return f == QuantFormat::Q4_0 || f == QuantFormat::Q8_0; }
// Builds the interleaved copy of a q4_0 / q8_0 weight (throws qforge::Error for any other weight or
// columns not in whole blocks of 32).
GgufInterleaved repack_interleaved(const QuantWeight& w);
// Reads row r, block b back from the interleaved copy (tests): scale bits and the row's code bytes
// (16 for q4_0, 32 for q8_0).
void interleaved_block(const GgufInterleaved& p, int64_t r, int64_t b, uint16_t& d, uint8_t* qs);

// The kernels' arguments: int8 activations in natural block order (quantize_act_row_*, pairs off).
struct GroupArgs {
  const uint8_t* data = nullptr;
  int64_t rows = 0, nb = 0;  // blocks of 32 per row
  const int8_t* xq = nullptr;
  const float* dx = nullptr;    // [n_tokens, nb]
  const float* dsum = nullptr;  // [n_tokens, nb]
  int64_t n_tokens = 0;
  float* y = nullptr;  // y[t * rows + r]
};
// Software prefetch of the group-block `kPrefetch` bytes ahead of `blk` into L2 (every cache line of
// its `bytes`), unless that runs past `end` (the kernels' range).
inline constexpr int64_t kPrefetch = 2048;
inline void prefetch_ahead(const uint8_t* blk, int64_t bytes, const char* end) {
  const char* pf = reinterpret_cast<const char*>(blk) + kPrefetch;
  if (pf + bytes > end) return;
  for (int64_t c = 0; c < bytes; c += 64) _mm_prefetch(pf + c, _MM_HINT_T1);
}
// Writes the 8 row results of group g for token t (rows past `rows` in the last group are not written).
inline void store_group(const GroupArgs& a, int64_t g, int64_t t, const float (&out)[8]) {
  float* y = a.y + t * a.rows;
  for (int r = 0; r < kRowGroup && g * kRowGroup + r < a.rows; ++r) y[g * kRowGroup + r] = out[r];
}
// f(std::integral_constant<int, R>{}) for R = rem (1 <= rem <= RMAX).
template <int RMAX, class F>
inline void remainder_tile(int64_t rem, F&& f) {
  if constexpr (RMAX >= 1) {
    if (rem == RMAX) f(std::integral_constant<int, RMAX>{});
    else remainder_tile<RMAX - 1>(rem, f);
  }
}
// The kernels' loop: kernel(tile, g, t0, end, prefetch) for every group of [g0, g1) and every token, in
// tiles of TMAX tokens and then one tile of the remainder (tile: std::integral_constant<int, T>). With
// several tokens, a group's first tile prefetches the bytes ahead (`end` bounds them to the range's
// bytes) while the later tiles reuse the group from cache. One token (decode) does not prefetch: a
// thread's groups are one sequential run, which the hardware prefetcher follows, and the prefetch cost
// q8_0 decode 10-12% on an AMD EPYC (docs/perf-notes.md).
template <int TMAX, class Kernel>
inline void run_groups(const GroupArgs& a, int64_t g0, int64_t g1, int64_t group_block_bytes, Kernel&& kernel) {
  const char* end = reinterpret_cast<const char*>(a.data + g1 * a.nb * group_block_bytes);
  const bool prefetch = a.n_tokens > 1;
  for (int64_t g = g0; g < g1; ++g) {
    int64_t t = 0;
    for (; t + TMAX <= a.n_tokens; t += TMAX) kernel(std::integral_constant<int, TMAX>{}, g, t, end, prefetch && t == 0);
    if (t < a.n_tokens)
      remainder_tile<TMAX - 1>(a.n_tokens - t, [&](auto tile) { kernel(tile, g, t, end, prefetch && t == 0); });
  }
}

// Groups [g0, g1) for every token (rows past `rows` in the last group are not written).
void q4x8_groups_avx512(const GroupArgs& a, int64_t g0, int64_t g1);
void q4x8_groups_avx2(const GroupArgs& a, int64_t g0, int64_t g1);
void q8x8_groups_avx512(const GroupArgs& a, int64_t g0, int64_t g1);
void q8x8_groups_avx2(const GroupArgs& a, int64_t g0, int64_t g1);

// y[n_tokens, rows] = x W^T over the interleaved copy, threaded over groups; isa Avx512 or Avx2
// (throws qforge::Error if the CPU lacks it). Any n_tokens; from kAmxMinTokens tokens on an Avx512 call
// goes to the AMX kernel where amx_available() (allow_amx = false keeps the VNNI kernels: tests).
void interleaved_linear(const GgufInterleaved& p, const float* x, int64_t n_tokens, float* y, Isa isa,
                        bool allow_amx = true);

// AMX int8 prefill (gguf_interleaved_amx.cpp). amx_available(): AMX-TILE/AMX-INT8 and AVX-512 (not capped
// by QFORGE_CPU_ISA), Linux granted the tile state to the process, and QFORGE_CPU_AMX is not "0".
// interleaved_linear_amx: the same product as interleaved_linear (same int8 activations, exact int32
// block sums; f32 additions in another order); any n_tokens, throws qforge::Error without AMX.
inline constexpr int64_t kAmxMinTokens = 16;
bool amx_available();
void interleaved_linear_amx(const GgufInterleaved& p, const float* x, int64_t n_tokens, float* y);

// Whether the cpu backend repacks q4_0 / q8_0 at prepare(): an AVX2+ CPU and QFORGE_CPU_REPACK (or the
// older QFORGE_CPU_Q4_0_REPACK) not "0".
bool interleaved_repack_enabled();

}  // namespace qforge::cpu_quant
