// src/backends/cpu/gguf_interleaved_amx.cpp — AMX int8 prefill over the interleaved q4_0 / q8_0 copy
// (gguf_interleaved.h). Per pair of row groups (16 rows) the weight blocks are rewritten once per call into
// AMX B tiles (8 x 64 bytes: 4 consecutive k of the 16 rows per row of the tile; q4_0 nibbles expanded to
// code - 8), then for every tile of 16 tokens and every block of 32 columns one tdpbssd gives the exact int32
// block sums of 16 tokens x 16 rows, which are scaled by the token's and the row's block scales and added in
// f32 (AVX-512). The activations are the same int8 blocks as the VNNI kernels'; only the order of the f32
// additions differs. Used only when amx_available(): the CPU has AMX-TILE/AMX-INT8 and AVX-512, and Linux
// granted the tile data state to the process (arch_prctl). The target pragma covers only code below the
// includes.
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "backends/cpu/amx_tiles.h"
#include "backends/cpu/gguf_interleaved.h"
#include "core/thread_pool.h"
#include "qforge/status.h"

#pragma GCC push_options
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC 12's intrinsic headers (_mm512_undefined_*)
#pragma GCC target("amx-tile,amx-int8,avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")

namespace qforge::cpu_quant {
namespace {

constexpr int kTile = 16;              // tokens per A tile and weight rows (two groups) per B tile
constexpr int64_t kBTileBytes = 512;   // 8 rows x 64 bytes


// tmm0, tmm1: int32 sums (16 tokens x 16 rows) of an even / odd block; tmm2, tmm3: their activations
// (16 tokens x 32 int8); tmm4, tmm5: their weights (B layout).
void configure_tiles() {
  cpu::AmxTileConfig c;
  for (int i : {0, 1}) c.rows[i] = kTile, c.colsb[i] = 64;
  for (int i : {2, 3}) c.rows[i] = kTile, c.colsb[i] = 32;
  for (int i : {4, 5}) c.rows[i] = 8, c.colsb[i] = 64;
  _tile_loadconfig(&c);
}

// The 16 rows' 32 codes of block b (rows 0-7 from group g, 8-15 from group g + 1, or zeros past the last
// group) as signed int8 in `rows32` [16][32], and their 16 scales as f32.
void block_codes(const GgufInterleaved& p, int64_t g, int64_t b, int8_t (&rows32)[kTile][32], float* scales) {
  const int64_t nb = p.cols / 32;
  const bool q8 = p.format == QuantFormat::Q8_0;
  alignas(32) uint16_t d[kTile] = {};
  for (int h = 0; h < 2; ++h) {
    if (g + h >= p.groups) {
      std::memset(rows32[8 * h], 0, 8 * 32);
      continue;
    }
    const uint8_t* gb = p.bytes.get() + ((g + h) * nb + b) * p.group_block_bytes;
    std::memcpy(d + 8 * h, gb, 16);
    if (q8) {
      std::memcpy(rows32[8 * h], gb + 16, 8 * 32);
    } else {
      const __m128i m4 = _mm_set1_epi8(15), eight = _mm_set1_epi8(8);
      for (int i = 0; i < 8; ++i) {  // q4_0: byte j holds k = j (low nibble) and k = j + 16 (high)
        const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(gb + 16 + 16 * i));
        const __m128i lo = _mm_sub_epi8(_mm_and_si128(v, m4), eight);
        const __m128i hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(v, 4), m4), eight);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(rows32[8 * h + i]), lo);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(rows32[8 * h + i] + 16), hi);
      }
    }
  }
  _mm512_storeu_ps(scales, _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(d))));
}

// B tile of one block: row kk holds, for each weight row n, its codes 4kk .. 4kk + 3 (a 16 x 8 transpose of
// 4-byte groups).
void to_b_tile(const int8_t (&rows32)[kTile][32], int8_t* bt) {
  const __m512i base = _mm512_setr_epi32(0, 8, 16, 24, 32, 40, 48, 56, 64, 72, 80, 88, 96, 104, 112, 120);
  for (int kk = 0; kk < 8; ++kk) {
    const __m512i v = _mm512_i32gather_epi32(_mm512_add_epi32(base, _mm512_set1_epi32(kk)), &rows32[0][0], 4);
    _mm512_storeu_si512(bt + kk * 64, v);
  }
}

struct AmxCall {
  const GgufInterleaved* p = nullptr;
  const int8_t* xq = nullptr;    // [n, K] int8 activations
  const float* dx = nullptr;     // [n, nb] their block scales
  const int8_t* tail = nullptr;  // the last n % 16 tokens' activations padded to 16 rows (or null)
  int64_t n = 0;
  float* y = nullptr;
};

// acc[t] (16 rows) += c[t] (int32) * row scales * dx of token t0 + t (tokens past n read the last token's
// scales and are never stored).
inline void add_scaled(const int32_t (&c)[kTile][kTile], const float* rs, const float* dx, int64_t t0, int64_t n,
                       int64_t nb, int64_t b, __m512 (&acc)[kTile]) {
  const __m512 w = _mm512_loadu_ps(rs);
#pragma GCC unroll 16
  for (int t = 0; t < kTile; ++t) {
    const __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_load_si512(c[t])), w);
    acc[t] = _mm512_fmadd_ps(v, _mm512_set1_ps(dx[std::min(t0 + t, n - 1) * nb + b]), acc[t]);
  }
}

// Row groups [2 gp0, 2 gp1) x every token.
void amx_pairs(const AmxCall& a, int64_t gp0, int64_t gp1) {
  const GgufInterleaved& p = *a.p;
  const int64_t K = p.cols, nb = K / 32;
  thread_local std::vector<int8_t> bts;
  thread_local std::vector<float> scs;
  bts.resize(size_t(nb * kBTileBytes) + 64);
  scs.resize(size_t(nb * kTile));
  int8_t* bt = reinterpret_cast<int8_t*>((reinterpret_cast<uintptr_t>(bts.data()) + 63) & ~uintptr_t(63));
  alignas(64) int32_t c0[kTile][kTile], c1[kTile][kTile];
  alignas(64) int8_t rows32[kTile][32];
  configure_tiles();
  for (int64_t gp = gp0; gp < gp1; ++gp) {
    for (int64_t b = 0; b < nb; ++b) {
      block_codes(p, 2 * gp, b, rows32, scs.data() + b * kTile);
      to_b_tile(rows32, bt + b * kBTileBytes);
    }
    cpu::amx_compiler_fence();
    const int64_t r0 = gp * kTile, nrows = std::min<int64_t>(kTile, p.rows - r0);
    const __mmask16 rmask = __mmask16((1u << nrows) - 1u);
    for (int64_t t0 = 0; t0 < a.n; t0 += kTile) {
      const bool full = t0 + kTile <= a.n;
      const int8_t* x = full ? a.xq + t0 * K : a.tail;
      __m512 acc[kTile];
      for (auto& v : acc) v = _mm512_setzero_ps();
      int64_t b = 0;
      for (; b + 1 < nb; b += 2) {
        _tile_zero(0);
        _tile_zero(1);
        _tile_loadd(2, x + b * 32, K);
        _tile_loadd(3, x + (b + 1) * 32, K);
        _tile_loadd(4, bt + b * kBTileBytes, 64);
        _tile_loadd(5, bt + (b + 1) * kBTileBytes, 64);
        _tile_dpbssd(0, 2, 4);
        _tile_dpbssd(1, 3, 5);
        _tile_stored(0, c0, 64);
        _tile_stored(1, c1, 64);
        cpu::amx_compiler_fence();
        add_scaled(c0, scs.data() + b * kTile, a.dx, t0, a.n, nb, b, acc);
        add_scaled(c1, scs.data() + (b + 1) * kTile, a.dx, t0, a.n, nb, b + 1, acc);
        cpu::amx_compiler_fence();
      }
      if (b < nb) {
        _tile_zero(0);
        _tile_loadd(2, x + b * 32, K);
        _tile_loadd(4, bt + b * kBTileBytes, 64);
        _tile_dpbssd(0, 2, 4);
        _tile_stored(0, c0, 64);
        cpu::amx_compiler_fence();
        add_scaled(c0, scs.data() + b * kTile, a.dx, t0, a.n, nb, b, acc);
        cpu::amx_compiler_fence();
      }
      const int64_t nt = std::min<int64_t>(kTile, a.n - t0);
      for (int64_t t = 0; t < nt; ++t) _mm512_mask_storeu_ps(a.y + (t0 + t) * p.rows + r0, rmask, acc[t]);
    }
  }
  _tile_release();
}

}  // namespace

bool amx_available() {
  static const bool ok = [] {
    const char* e = std::getenv("QFORGE_CPU_AMX");
    if (e && std::string(e) == "0") return false;
    if (best_isa() != Isa::Avx512) return false;
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return false;
    if (!(edx & (1u << 24)) || !(edx & (1u << 25))) return false;  // AMX-TILE, AMX-INT8
    constexpr long kReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;  // Linux: ask for the tile data state
    return syscall(SYS_arch_prctl, kReqXcompPerm, kXfeatureXtiledata) == 0;
  }();
  return ok;
}

void interleaved_linear_amx(const GgufInterleaved& p, const float* x, int64_t n_tokens, float* y) {
  if (!amx_available()) throw Error("interleaved_linear_amx: AMX int8 is not available on this CPU");
  if (p.rows == 0 || n_tokens == 0) return;
  const int64_t K = p.cols;
  if (K == 0) {
    std::fill(y, y + p.rows * n_tokens, 0.0f);
    return;
  }
  const Int8Act& act = quantize_act(x, n_tokens, K, false, Isa::Avx512);
  AmxCall a;
  a.p = &p;
  a.xq = act.q.data();
  a.dx = act.d.data();
  a.n = n_tokens;
  a.y = y;
  std::vector<int8_t> tail;
  if (const int64_t rem = n_tokens % kTile) {
    tail.assign(size_t(kTile * K), 0);
    std::memcpy(tail.data(), act.q.data() + (n_tokens - rem) * K, size_t(rem * K));
    a.tail = tail.data();
  }
  const int64_t pairs = (p.groups + 1) / 2;
  ThreadPool::global().parallel_for(pairs, 1, [&](int64_t g0, int64_t g1) { amx_pairs(a, g0, g1); });
}

}  // namespace qforge::cpu_quant

#pragma GCC diagnostic pop
#pragma GCC pop_options
