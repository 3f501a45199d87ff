// src/backends/cpu/kquant_amx.cpp — K-quant (Q2_K..Q6_K) prefill on AMX int8 tiles (kquant_int8.h). The weights
// are the A operand, so they need no transpose: per group of 16 rows, each super-block is rewritten once per call
// into int8 rows (p = sub-block scale x code split as 64 hi + lo, and the minimum codes m) that tile loads read
// with the row stride. The activations are the B operand, quantized per super-block and laid out once per call as
// B tiles (16 tokens x 4 consecutive k per tile row). Per super-block and tile of 16 rows x 16 tokens, 4 tdpbssd
// per operand (K = 64 each) give the exact int32 sums of p and m against the activations, and one f32 step per
// super-block adds them with the row's d, dmin and the token's d_x: the scalar reference's bits. Used where
// amx_available() (gguf_interleaved.h). The target pragma covers only code below the includes.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "backends/cpu/amx_tiles.h"
#include "backends/cpu/gguf_interleaved.h"
#include "backends/cpu/kquant_int8.h"
#include "core/thread_pool.h"
#include "qforge/status.h"
#include "quant/quant_codecs.h"

#pragma GCC push_options
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC 12's intrinsic headers (_mm512_undefined_*)
#pragma GCC target("amx-tile,amx-int8,avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")

#include "backends/cpu/kquant_chunks.h"

namespace qforge::cpu_quant {
namespace {

constexpr int64_t kSuper = 256;
constexpr int kTile = 16;            // weight rows per A tile, tokens per B tile
constexpr int64_t kChunk = 64;       // k per tdpbssd
constexpr int64_t kBTileBytes = 1024;

// The 32 products p = v x (16 lanes sc0, 16 lanes sc1) as int16 (|p| <= 4096): kquant_ints's p.
inline __m512i kquant_chunk_products(__m256i v, int sc0, int sc1) {
  const __m512i s = _mm512_inserti64x4(_mm512_set1_epi16(short(sc0)), _mm256_set1_epi16(short(sc1)), 1);
  return _mm512_mullo_epi16(_mm512_cvtepi8_epi16(v), s);
}

// p = v * (16 lanes sc0, 16 lanes sc1) as hi = p >> 6 and lo = p & 63; the minimum codes m0 / m1 per half.
inline void split_store(__m256i v, int sc0, int sc1, int m0, int m1, int8_t* hi, int8_t* lo, int8_t* m) {
  const __m512i p = kquant_chunk_products(v, sc0, sc1);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(hi), _mm512_cvtepi16_epi8(_mm512_srai_epi16(p, 6)));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(lo), _mm512_cvtepi16_epi8(_mm512_and_si512(p, _mm512_set1_epi16(63))));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(m), _mm_set1_epi8(char(m0)));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(m + 16), _mm_set1_epi8(char(m1)));
}

// One super-block in the tiles' form: 256 hi, lo and m bytes; the same values as quant_detail::kquant_ints.
void super_block_rows(QuantFormat f, const uint8_t* blk, int8_t* hi, int8_t* lo, int8_t* m, float& d, float& dmin) {
  kquant_chunks(f, blk, d, dmin, [&](int i, __m256i v, int sc0, int sc1, int m0, int m1) {
    split_store(v, sc0, sc1, m0, m1, hi + 32 * i, lo + 32 * i, m + 32 * i);
  });
}

// One group of 16 weight rows in the tiles' form: hi / lo / m [16][K] int8, d / dmin [16][nsb] (rows past the
// weight are zero).
struct RowGroup {
  std::vector<int8_t> hi, lo, m;
  std::vector<float> d, dmin;
};

void fill_group(const QuantWeight& w, int64_t r0, RowGroup& g) {
  const int64_t K = w.cols, nsb = K / kSuper;
  g.hi.resize(size_t(kTile * K));
  g.lo.resize(size_t(kTile * K));
  g.m.resize(size_t(kTile * K));
  g.d.assign(size_t(kTile * nsb), 0.0f);
  g.dmin.assign(size_t(kTile * nsb), 0.0f);
  for (int r = 0; r < kTile; ++r) {
    const int64_t o = r * K;
    if (r0 + r >= w.rows) {
      std::memset(g.hi.data() + o, 0, size_t(K));
      std::memset(g.lo.data() + o, 0, size_t(K));
      std::memset(g.m.data() + o, 0, size_t(K));
      continue;
    }
    for (int64_t sb = 0; sb < nsb; ++sb)
      super_block_rows(w.format, kquant_super_block(w, r0 + r, sb), g.hi.data() + o + sb * kSuper,
                       g.lo.data() + o + sb * kSuper, g.m.data() + o + sb * kSuper, g.d[size_t(r * nsb + sb)],
                       g.dmin[size_t(r * nsb + sb)]);
  }
}

struct AmxCall {
  const QuantWeight* w = nullptr;
  const int8_t* xb = nullptr;  // B tiles: [token tile][K / 64] x 1 KB (tile row kk: 16 tokens x k 4kk..4kk+3)
  const float* dx = nullptr;   // [token tile][nsb][16] (zero past the last token)
  int64_t n = 0;
  float* y = nullptr;
};

// tmm0 / tmm1 / tmm2: int32 sums of hi / lo / m (16 rows x 16 tokens); tmm3 / tmm4 / tmm5: their weight rows
// (16 x 64 int8); tmm6: the activations (16 tile rows x 64 bytes).
void configure_tiles() {
  cpu::AmxTileConfig c;
  for (int i = 0; i < 7; ++i) c.rows[i] = kTile, c.colsb[i] = 64;
  _tile_loadconfig(&c);
}

template <bool HI, bool MIN>
void amx_groups(const AmxCall& a, int64_t g0, int64_t g1) {
  const QuantWeight& w = *a.w;
  const int64_t N = w.rows, K = w.cols, nsb = K / kSuper, nch = K / kChunk;
  thread_local RowGroup g;
  alignas(64) int32_t chi[kTile][kTile], clo[kTile][kTile], cm[kTile][kTile];
  alignas(64) float out[kTile][kTile];
  configure_tiles();
  for (int64_t gi = g0; gi < g1; ++gi) {
    const int64_t r0 = gi * kTile, nr = std::min<int64_t>(kTile, N - r0);
    fill_group(w, r0, g);
    cpu::amx_compiler_fence();
    for (int64_t t0 = 0, tt = 0; t0 < a.n; t0 += kTile, ++tt) {
      __m512 acc[kTile];
      for (auto& v : acc) v = _mm512_setzero_ps();
      for (int64_t sb = 0; sb < nsb; ++sb) {
        if constexpr (HI) _tile_zero(0);
        _tile_zero(1);
        if constexpr (MIN) _tile_zero(2);
        for (int64_t c = 0; c < 4; ++c) {
          const int64_t k = sb * kSuper + c * kChunk;
          _tile_loadd(6, a.xb + (tt * nch + k / kChunk) * kBTileBytes, 64);
          if constexpr (HI) {
            _tile_loadd(3, g.hi.data() + k, K);
            _tile_dpbssd(0, 3, 6);
          }
          _tile_loadd(4, g.lo.data() + k, K);
          _tile_dpbssd(1, 4, 6);
          if constexpr (MIN) {
            _tile_loadd(5, g.m.data() + k, K);
            _tile_dpbssd(2, 5, 6);
          }
        }
        if constexpr (HI) _tile_stored(0, chi, 64);
        _tile_stored(1, clo, 64);
        if constexpr (MIN) _tile_stored(2, cm, 64);
        cpu::amx_compiler_fence();
        const __m512 u = _mm512_loadu_ps(a.dx + (tt * nsb + sb) * kTile);
        const float* d = g.d.data() + sb;
        const float* dm = g.dmin.data() + sb;
#pragma GCC unroll 16
        for (int r = 0; r < kTile; ++r) {
          __m512i v = _mm512_load_si512(clo[r]);
          if constexpr (HI) v = _mm512_add_epi32(_mm512_slli_epi32(_mm512_load_si512(chi[r]), 6), v);
          acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(v), _mm512_mul_ps(_mm512_set1_ps(d[r * nsb]), u), acc[r]);
          if constexpr (MIN)
            acc[r] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(_mm512_load_si512(cm[r])),
                                      _mm512_mul_ps(_mm512_set1_ps(dm[r * nsb]), u), acc[r]);
        }
        cpu::amx_compiler_fence();
      }
      for (int r = 0; r < kTile; ++r) _mm512_store_ps(out[r], acc[r]);
      const int64_t nt = std::min<int64_t>(kTile, a.n - t0);
      for (int64_t t = 0; t < nt; ++t)
        for (int64_t r = 0; r < nr; ++r) a.y[(t0 + t) * N + r0 + r] = out[r][t];
    }
  }
  _tile_release();
}

}  // namespace

void kquant_tile_rows(const QuantWeight& w, int64_t r, int64_t sb, int8_t* hi, int8_t* lo, int8_t* m, float& d,
                      float& dmin) {
  kquant_check_shape(w, "kquant_tile_rows");
  super_block_rows(w.format, kquant_super_block(w, r, sb), hi, lo, m, d, dmin);
}

void kquant_linear_amx(const QuantWeight& w, const float* x, int64_t n_tokens, float* y) {
  kquant_check_shape(w, "kquant_linear_amx");
  if (!amx_available()) throw Error("kquant_linear_amx: AMX int8 is not available on this CPU");
  const int64_t N = w.rows, K = w.cols, nsb = K / kSuper, nch = K / kChunk;
  if (N == 0 || n_tokens == 0) return;
  if (K == 0) {
    std::fill(y, y + N * n_tokens, 0.0f);
    return;
  }
  KQuantAct act;
  quantize_act_k(x, n_tokens, K, act);
  const int64_t ntt = (n_tokens + kTile - 1) / kTile;
  std::vector<int8_t> xb(size_t(ntt * nch * kBTileBytes), 0);
  std::vector<float> dx(size_t(ntt * nsb * kTile), 0.0f);
  for (int64_t t = 0; t < n_tokens; ++t) {
    const int64_t tt = t / kTile, tl = t % kTile;
    const int8_t* q = act.q.data() + t * K;
    for (int64_t c = 0; c < nch; ++c) {
      int8_t* tile = xb.data() + (tt * nch + c) * kBTileBytes + 4 * tl;
      for (int kk = 0; kk < 16; ++kk) std::memcpy(tile + 64 * kk, q + c * kChunk + 4 * kk, 4);
    }
    for (int64_t sb = 0; sb < nsb; ++sb) dx[size_t((tt * nsb + sb) * kTile + tl)] = act.d[size_t(t * nsb + sb)];
  }
  AmxCall a;
  a.w = &w;
  a.xb = xb.data();
  a.dx = dx.data();
  a.n = n_tokens;
  a.y = y;
  const int64_t groups = (N + kTile - 1) / kTile;
  const bool hi = w.format != QuantFormat::Q2_K, mins = kquant_has_min(w.format);  // Q2_K: p = scale x code <= 45
  ThreadPool::global().parallel_for(groups, 1, [&](int64_t g0, int64_t g1) {
    if (hi && mins) amx_groups<true, true>(a, g0, g1);
    else if (hi) amx_groups<true, false>(a, g0, g1);
    else amx_groups<false, true>(a, g0, g1);
  });
}

}  // namespace qforge::cpu_quant

#pragma GCC diagnostic pop
#pragma GCC pop_options
