// backends/cpu/linear_amx.cpp — AMX-BF16 prefill for bf16 / f16 weights (16+ tokens). The activations are
// split exactly into three bf16 parts (x = h + m + l: 8 + 8 + 8 significant bits) once per call, f16 weights
// into two (w = h + l; the l x l term, below 2^-24 |w x|, is dropped), so every product the tile unit forms
// is exact and only the f32 accumulation rounds. Per block of rows (4 groups of 16 for bf16, 2 for f16; the
// weights rewritten once per call into B tiles that stay in L2) and tile of 16 tokens, every 32 columns load
// the three activation tiles once and run them against each group's B tile into that group's f32 C tile.
// Only called when amx_bf16_available(); the target pragma covers only code below the includes.
#include <cpuid.h>
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "backends/cpu/cpu_kernels.h"
#include "backends/cpu/amx_tiles.h"
#include "backends/cpu/gguf_interleaved.h"
#include "core/thread_pool.h"
#include "qforge/status.h"

#pragma GCC push_options
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC 12's intrinsic headers (_mm512_undefined_*)
#pragma GCC target("amx-tile,amx-bf16,avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")

namespace qforge::cpu {
namespace {

constexpr int kT = 16;                 // tokens per tile, rows per group
constexpr int64_t kTileU16 = 512;      // one B tile: 16 rows x 32 bf16 (1 KB)

void configure_tiles(int ntiles) {  // every tile 16 rows x 64 bytes
  AmxTileConfig c;
  for (int i = 0; i < ntiles; ++i) c.rows[i] = kT, c.colsb[i] = 64;
  _tile_loadconfig(&c);
}

// f32 -> bf16 bits (round to nearest even, finite values) in the low half of each 32-bit lane, and back.
inline __m512i bf16_rne(__m512 v) {
  const __m512i b = _mm512_castps_si512(v);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(b, 16), _mm512_set1_epi32(1));
  return _mm512_srli_epi32(_mm512_add_epi32(b, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff))), 16);
}
inline __m512 bf16_value(__m512i h) { return _mm512_castsi512_ps(_mm512_slli_epi32(h, 16)); }

// Tokens [t0, t1) of x [n, in] into the three bf16 parts xs[p][np][in] (rows past n zero).
void split_x(const float* x, int64_t n, int64_t np, int64_t in, uint16_t* xs, int64_t t0, int64_t t1) {
  for (int64_t t = t0; t < t1; ++t)
    for (int64_t k = 0; k < in; k += 16) {
      const __m512 v = t < n ? _mm512_loadu_ps(x + t * in + k) : _mm512_setzero_ps();
      const __m512i h = bf16_rne(v);
      const __m512 r = _mm512_sub_ps(v, bf16_value(h));
      const __m512i m = bf16_rne(r);
      const __m512i l = bf16_rne(_mm512_sub_ps(r, bf16_value(m)));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(xs + t * in + k), _mm512_cvtepi32_epi16(h));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(xs + (np + t) * in + k), _mm512_cvtepi32_epi16(m));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(xs + (2 * np + t) * in + k), _mm512_cvtepi32_epi16(l));
    }
}

// B tiles of the 16 rows from r0 (rows past `rows` zero): tile row kk of block kb holds, for each weight
// row n, its elements 32 kb + 2 kk and + 1 (one 4-byte gather lane each). f16 weights give a high and a
// low tile (bl); bf16 ones only bh.
template <DType WT>
void pack_group(const uint16_t* w, int64_t rows, int64_t in, int64_t r0, uint16_t* bh, uint16_t* bl) {
  const int64_t nb = in / 32;
  const __mmask16 rm = r0 >= rows ? 0 : rows - r0 >= kT ? __mmask16(0xFFFF) : __mmask16((1u << (rows - r0)) - 1);
  const __m512i rowoff =
      _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), _mm512_set1_epi32(int(in * 2)));
  const void* base = w + std::min(r0, rows - 1) * in;
  for (int64_t kb = 0; kb < nb; ++kb)
    for (int kk = 0; kk < 16; ++kk) {
      const __m512i idx = _mm512_add_epi32(rowoff, _mm512_set1_epi32(int((kb * 32 + 2 * kk) * 2)));
      const __m512i d = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), rm, idx, base, 1);
      uint16_t* dh = bh + kb * kTileU16 + kk * 32;
      if constexpr (WT == DType::BF16) {
        _mm512_storeu_si512(dh, d);
      } else {
        const __m512 e0 = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(d));
        const __m512 e1 = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(d, 16)));
        const __m512i h0 = bf16_rne(e0), h1 = bf16_rne(e1);
        const __m512i l0 = bf16_rne(_mm512_sub_ps(e0, bf16_value(h0))), l1 = bf16_rne(_mm512_sub_ps(e1, bf16_value(h1)));
        _mm512_storeu_si512(dh, _mm512_or_si512(h0, _mm512_slli_epi32(h1, 16)));
        _mm512_storeu_si512(bl + kb * kTileU16 + kk * 32, _mm512_or_si512(l0, _mm512_slli_epi32(l1, 16)));
      }
    }
}

// y rows [r0, r0 + 16) of tokens [t0, t0 + 16) from a stored C tile (rows past `rows`, tokens past n skipped).
inline void store_c(const float (&c)[kT][kT], int64_t rows, int64_t r0, int64_t n, int64_t t0, float* y) {
  if (r0 >= rows) return;
  const __mmask16 rm = rows - r0 >= kT ? __mmask16(0xFFFF) : __mmask16((1u << (rows - r0)) - 1);
  for (int64_t t = 0; t < kT && t0 + t < n; ++t) _mm512_mask_storeu_ps(y + (t0 + t) * rows + r0, rm, _mm512_load_ps(c[t]));
}

struct Call {
  const uint16_t* w = nullptr;
  int64_t rows = 0, in = 0, n = 0, np = 0;
  const uint16_t* xs = nullptr;
  float* y = nullptr;
};

// C tile TILE (a literal: GCC's tile intrinsics take tile numbers as tokens) into y rows [R0, R0 + 16) of the
// token tile t0, through the stack tile c; uses the enclosing block function's a, c and t0.
#define QF_STORE_C(TILE, R0)                   \
  _tile_stored(TILE, c, 64);                   \
  amx_compiler_fence();                        \
  store_c(c, a.rows, (R0), a.n, t0, a.y);      \
  amx_compiler_fence();

// bf16 weights: row block of 4 groups; tiles 0-3 C, 4-6 the activation parts, 7 B.
void block_bf16(const Call& a, int64_t rb, uint16_t* bh) {
  const int64_t nb = a.in / 32, r0 = rb * 4 * kT, astride = a.in * 2, pstride = a.np * a.in;
  for (int g = 0; g < 4; ++g) pack_group<DType::BF16>(a.w, a.rows, a.in, r0 + g * kT, bh + g * nb * kTileU16, nullptr);
  amx_compiler_fence();
  alignas(64) float c[kT][kT];
  for (int64_t t0 = 0; t0 < a.np; t0 += kT) {
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    const uint16_t* xa = a.xs + t0 * a.in;
    for (int64_t kb = 0; kb < nb; ++kb) {
      _tile_loadd(4, xa + kb * 32, astride);
      _tile_loadd(5, xa + pstride + kb * 32, astride);
      _tile_loadd(6, xa + 2 * pstride + kb * 32, astride);
#define QF_GROUP(G)                                              \
  _tile_loadd(7, bh + ((G) * nb + kb) * kTileU16, 64);          \
  _tile_dpbf16ps(G, 4, 7);                                      \
  _tile_dpbf16ps(G, 5, 7);                                      \
  _tile_dpbf16ps(G, 6, 7);
      QF_GROUP(0)
      QF_GROUP(1)
      QF_GROUP(2)
      QF_GROUP(3)
#undef QF_GROUP
    }
    QF_STORE_C(0, r0)
    QF_STORE_C(1, r0 + kT)
    QF_STORE_C(2, r0 + 2 * kT)
    QF_STORE_C(3, r0 + 3 * kT)
  }
}

// f16 weights: row block of 2 groups; tiles 0-1 C, 2-4 the activation parts, 5 B high, 6 B low.
void block_f16(const Call& a, int64_t rb, uint16_t* bh, uint16_t* bl) {
  const int64_t nb = a.in / 32, r0 = rb * 2 * kT, astride = a.in * 2, pstride = a.np * a.in;
  for (int g = 0; g < 2; ++g)
    pack_group<DType::F16>(a.w, a.rows, a.in, r0 + g * kT, bh + g * nb * kTileU16, bl + g * nb * kTileU16);
  amx_compiler_fence();
  alignas(64) float c[kT][kT];
  for (int64_t t0 = 0; t0 < a.np; t0 += kT) {
    _tile_zero(0);
    _tile_zero(1);
    const uint16_t* xa = a.xs + t0 * a.in;
    for (int64_t kb = 0; kb < nb; ++kb) {
      _tile_loadd(2, xa + kb * 32, astride);
      _tile_loadd(3, xa + pstride + kb * 32, astride);
      _tile_loadd(4, xa + 2 * pstride + kb * 32, astride);
#define QF_GROUP(G)                                              \
  _tile_loadd(5, bh + ((G) * nb + kb) * kTileU16, 64);          \
  _tile_loadd(6, bl + ((G) * nb + kb) * kTileU16, 64);          \
  _tile_dpbf16ps(G, 2, 5);                                      \
  _tile_dpbf16ps(G, 3, 5);                                      \
  _tile_dpbf16ps(G, 4, 5);                                      \
  _tile_dpbf16ps(G, 2, 6);                                      \
  _tile_dpbf16ps(G, 3, 6);
      QF_GROUP(0)
      QF_GROUP(1)
#undef QF_GROUP
    }
    QF_STORE_C(0, r0)
    QF_STORE_C(1, r0 + kT)
  }
}

#undef QF_STORE_C

}  // namespace

bool amx_bf16_available() {
  static const bool ok = [] {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) || !(edx & (1u << 22))) return false;  // AMX-BF16
    return cpu_quant::amx_available();  // tile support, AVX-512, the kernel's permission, QFORGE_CPU_AMX
  }();
  return ok;
}

void linear_amx16(const void* w, DType wt, int64_t rows, int64_t in, const float* x, int64_t n, float* y) {
  if (!amx_bf16_available()) throw Error("linear_amx16: AMX-BF16 is not available on this CPU");
  if ((wt != DType::BF16 && wt != DType::F16) || in % 32 != 0)
    throw Error("linear_amx16: bf16 / f16 weights with a multiple of 32 columns only");
  if (rows == 0 || n == 0) return;
  // Tokens in chunks of up to 256: the split activations (6 bytes per input) stay ~22 MB at most for
  // 14336 columns, and the weights are re-gathered once per chunk (amortized over 16 token tiles).
  constexpr int64_t kChunk = 256;
  std::vector<uint16_t> xs;
  const bool f16 = wt == DType::F16;
  const int64_t block_rows = f16 ? 2 * kT : 4 * kT, blocks = (rows + block_rows - 1) / block_rows;
  for (int64_t c0 = 0; c0 < n; c0 += kChunk) {
    Call a;
    a.w = static_cast<const uint16_t*>(w);
    a.rows = rows;
    a.in = in;
    a.n = std::min(kChunk, n - c0);
    a.np = (a.n + kT - 1) / kT * kT;
    a.y = y + c0 * rows;
    xs.resize(size_t(3 * a.np * in));
    a.xs = xs.data();
    const float* xc = x + c0 * in;
    ThreadPool::global().parallel_for(a.np, 4, [&](int64_t t0, int64_t t1) { split_x(xc, a.n, a.np, in, xs.data(), t0, t1); });
    ThreadPool::global().parallel_for(blocks, 1, [&](int64_t b0, int64_t b1) {
      thread_local std::vector<uint16_t> bh, bl;
      const size_t tiles = size_t(block_rows / kT * (in / 32) * kTileU16);
      if (bh.size() < tiles) bh.resize(tiles);
      if (f16 && bl.size() < tiles) bl.resize(tiles);
      configure_tiles(8);
      for (int64_t b = b0; b < b1; ++b) f16 ? block_f16(a, b, bh.data(), bl.data()) : block_bf16(a, b, bh.data());
      _tile_release();
    });
  }
}

}  // namespace qforge::cpu

#pragma GCC diagnostic pop
#pragma GCC pop_options
