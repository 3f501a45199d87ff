// src/backends/cpu/kquant_avx512.cpp — K-quant (Q2_K..Q6_K) prefill with int8 activations on AVX-512 VNNI, for
// CPUs without AMX: the same integer products as kquant_linear_int8_ref (kquant_amx.h), bit for bit. Per group
// of 16 weight rows, every super-block is rewritten once per call into int16 products p = scale x code with the
// 16 rows in the 16 lanes (each dword a pair of consecutive k), so that one vpdpwssd multiplies 16 rows by a
// broadcast pair of a token's activations (int8 widened to int16); the minimum codes of the 16 half-blocks
// meet the activations' half-block sums the same way. Per super-block the exact int32 sums go through one f32
// step with the row's d / dmin and the token's d_x. Tiles of 8 tokens share each weight load. The target
// pragma covers only code below the includes.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "backends/cpu/gguf_interleaved.h"
#include "backends/cpu/kquant_amx.h"
#include "core/thread_pool.h"
#include "qforge/status.h"

#pragma GCC push_options
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC 12's intrinsic headers (_mm512_undefined_*)
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c")

#include "backends/cpu/kquant_chunks.h"

namespace qforge::cpu_quant {
namespace {

constexpr int kLanes = 16;       // weight rows per group (one per dword lane)
constexpr int kTokens = 8;       // tokens per tile
constexpr int64_t kSuper = 256;
constexpr int kPairs = 128;      // int16 pairs per super-block row
constexpr int kHalves = 16;      // 16-weight half-blocks per super-block

// 16 rows in the kernel's form: w [nsb][128][16] and mw [nsb][8][16] dwords (int16 pairs of p, of the
// half-blocks' minimum codes), d / dmin [nsb][16] (zero rows past the weight).
struct LaneGroup {
  std::vector<int32_t> w, mw;
  std::vector<float> d, dmin;
};

// v[r] (16 dwords of row r) -> v[c] (dword c of the 16 rows).
inline void transpose_16x16(__m512i (&v)[16]) {
  __m512i t[16], u[16];
  for (int i = 0; i < 8; ++i) {  // lane L of t[2i]: rows 2i, 2i+1 at 4L, 4L+1; of t[2i+1]: at 4L+2, 4L+3
    t[2 * i] = _mm512_unpacklo_epi32(v[2 * i], v[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_epi32(v[2 * i], v[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {  // lane L of u[4i + c]: rows 4i .. 4i+3 of column 4L + c
    u[4 * i] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
    u[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
    u[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
    u[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
  }
  for (int c = 0; c < 4; ++c) {
    const __m512i a = _mm512_shuffle_i32x4(u[c], u[4 + c], 0x88), b = _mm512_shuffle_i32x4(u[c], u[4 + c], 0xdd);
    const __m512i e = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0x88), f = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0xdd);
    v[c] = _mm512_shuffle_i32x4(a, e, 0x88);
    v[8 + c] = _mm512_shuffle_i32x4(a, e, 0xdd);
    v[4 + c] = _mm512_shuffle_i32x4(b, f, 0x88);
    v[12 + c] = _mm512_shuffle_i32x4(b, f, 0xdd);
  }
}

void fill_group(const QuantWeight& w, int64_t r0, LaneGroup& g) {
  const int64_t nsb = w.cols / kSuper, row_bytes = int64_t(w.data.nbytes()) / w.rows, sb_bytes = row_bytes / nsb;
  g.w.resize(size_t(nsb * kPairs * kLanes));
  g.mw.resize(size_t(nsb * 8 * kLanes));
  g.d.assign(size_t(nsb * kLanes), 0.0f);
  g.dmin.assign(size_t(nsb * kLanes), 0.0f);
  alignas(64) int16_t p[kLanes][kSuper];
  int16_t m[kLanes][kHalves];
  for (int64_t sb = 0; sb < nsb; ++sb) {
    for (int r = 0; r < kLanes; ++r) {
      if (r0 + r >= w.rows) {
        std::memset(p[r], 0, sizeof p[r]);
        std::memset(m[r], 0, sizeof m[r]);
        continue;
      }
      const uint8_t* blk = static_cast<const uint8_t*>(w.data.raw()) + (r0 + r) * row_bytes + sb * sb_bytes;
      kquant_chunks(w.format, blk, g.d[size_t(sb * kLanes + r)], g.dmin[size_t(sb * kLanes + r)],
                    [&](int i, __m256i v, int sc0, int sc1, int m0, int m1) {
                      _mm512_store_si512(p[r] + 32 * i, kquant_chunk_products(v, sc0, sc1));
                      m[r][2 * i] = int16_t(m0);
                      m[r][2 * i + 1] = int16_t(m1);
                    });
    }
    int32_t* wd = g.w.data() + sb * kPairs * kLanes;
    for (int i = 0; i < 8; ++i) {  // dwords 16 i .. 16 i + 15 of the 16 rows
      __m512i v[kLanes];
      for (int r = 0; r < kLanes; ++r) v[r] = _mm512_load_si512(p[r] + 32 * i);
      transpose_16x16(v);
      for (int c = 0; c < kLanes; ++c) _mm512_storeu_si512(wd + (16 * i + c) * kLanes, v[c]);
    }
    int32_t* md = g.mw.data() + sb * 8 * kLanes;
    for (int j = 0; j < 8; ++j)
      for (int r = 0; r < kLanes; ++r) md[j * kLanes + r] = int32_t(uint16_t(m[r][2 * j])) | int32_t(m[r][2 * j + 1]) << 16;
  }
}

struct Call {
  const QuantWeight* w = nullptr;
  const int32_t* x = nullptr;   // [n][K / 2] int16 pairs of the int8 activations
  const int32_t* bs = nullptr;  // [n][nsb][8] int16 pairs of the half-block sums of the int8 activations
  const float* dx = nullptr;    // [n][nsb]
  int64_t n = 0;
  float* y = nullptr;
};

template <int T, bool MIN>
void token_tile(const Call& a, const LaneGroup& g, int64_t r0, int64_t t0) {
  const int64_t N = a.w->rows, K = a.w->cols, nsb = K / kSuper;
  __m512 acc[T];
  for (auto& v : acc) v = _mm512_setzero_ps();
  for (int64_t sb = 0; sb < nsb; ++sb) {
    __m512i is[T], ms[T];
    for (int t = 0; t < T; ++t) is[t] = ms[t] = _mm512_setzero_si512();
    const int32_t* wd = g.w.data() + sb * kPairs * kLanes;
    const int32_t* xs = a.x + t0 * (K / 2) + sb * kPairs;
    for (int i = 0; i < kPairs; ++i) {
      const __m512i wv = _mm512_loadu_si512(wd + i * kLanes);
#pragma GCC unroll 8
      for (int t = 0; t < T; ++t) is[t] = _mm512_dpwssd_epi32(is[t], wv, _mm512_set1_epi32(xs[t * (K / 2) + i]));
    }
    if constexpr (MIN) {
      const int32_t* md = g.mw.data() + sb * 8 * kLanes;
      const int32_t* bs = a.bs + (t0 * nsb + sb) * 8;
      for (int j = 0; j < 8; ++j) {
        const __m512i mv = _mm512_loadu_si512(md + j * kLanes);
        for (int t = 0; t < T; ++t) ms[t] = _mm512_dpwssd_epi32(ms[t], mv, _mm512_set1_epi32(bs[t * nsb * 8 + j]));
      }
    }
    const __m512 dv = _mm512_loadu_ps(g.d.data() + sb * kLanes), dmv = _mm512_loadu_ps(g.dmin.data() + sb * kLanes);
    for (int t = 0; t < T; ++t) {
      const __m512 dxs = _mm512_set1_ps(a.dx[(t0 + t) * nsb + sb]);
      acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(is[t]), _mm512_mul_ps(dv, dxs), acc[t]);
      if constexpr (MIN) acc[t] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(ms[t]), _mm512_mul_ps(dmv, dxs), acc[t]);
    }
  }
  const __mmask16 rmask = __mmask16((1u << std::min<int64_t>(kLanes, N - r0)) - 1u);
  for (int t = 0; t < T; ++t) _mm512_mask_storeu_ps(a.y + (t0 + t) * N + r0, rmask, acc[t]);
}

template <bool MIN>
void lane_groups(const Call& a, int64_t g0, int64_t g1) {
  thread_local LaneGroup g;
  for (int64_t gi = g0; gi < g1; ++gi) {
    const int64_t r0 = gi * kLanes;
    fill_group(*a.w, r0, g);
    int64_t t = 0;
    for (; t + kTokens <= a.n; t += kTokens) token_tile<kTokens, MIN>(a, g, r0, t);
    if (t < a.n) remainder_tile<kTokens - 1>(a.n - t, [&](auto tile) { token_tile<decltype(tile)::value, MIN>(a, g, r0, t); });
  }
}

}  // namespace

bool kquant_avx512_applies(const QuantWeight& w, int64_t n_tokens) {
  return kquant_int8_prefill_enabled() && kquant_int8_format(w.format) && w.cols % kSuper == 0 && w.cols > 0 && n_tokens >= kKQuantInt8MinTokens &&
         best_isa() == Isa::Avx512;
}

void kquant_linear_avx512(const QuantWeight& w, const float* x, int64_t n_tokens, float* y) {
  if (!kquant_int8_format(w.format) || w.cols % kSuper != 0)
    throw Error("kquant_linear_avx512: needs a K-quant weight with whole super-blocks (got " +
                std::string(quant_traits(w.format).name) + ", " + std::to_string(w.cols) + " columns)");
  if (!isa_supported(Isa::Avx512)) throw Error("kquant_linear_avx512: this CPU has no AVX-512 VNNI");
  const int64_t N = w.rows, K = w.cols, nsb = K / kSuper;
  if (N == 0 || n_tokens == 0) return;
  KQuantAct act;
  quantize_act_k(x, n_tokens, K, act);
  std::vector<int32_t> xp(size_t(n_tokens * K / 2)), bs(size_t(n_tokens * nsb * 8));
  for (int64_t t = 0; t < n_tokens; ++t) {
    const int8_t* q = act.q.data() + t * K;
    for (int64_t k = 0; k < K; k += 32)
      _mm512_storeu_si512(xp.data() + (t * K + k) / 2,
                          _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + k))));
    for (int64_t h = 0; h < K / 32; ++h) {  // pairs of half-block sums
      int32_t s0 = 0, s1 = 0;
      for (int i = 0; i < 16; ++i) s0 += q[32 * h + i], s1 += q[32 * h + 16 + i];
      bs[size_t(t * nsb * 8 + h)] = int32_t(uint16_t(int16_t(s0))) | s1 << 16;
    }
  }
  Call a;
  a.w = &w;
  a.x = xp.data();
  a.bs = bs.data();
  a.dx = act.d.data();
  a.n = n_tokens;
  a.y = y;
  const int64_t groups = (N + kLanes - 1) / kLanes;
  const bool mins = w.format == QuantFormat::Q2_K || w.format == QuantFormat::Q4_K || w.format == QuantFormat::Q5_K;
  ThreadPool::global().parallel_for(groups, 1, [&](int64_t g0, int64_t g1) {
    if (mins) lane_groups<true>(a, g0, g1);
    else lane_groups<false>(a, g0, g1);
  });
}

}  // namespace qforge::cpu_quant

#pragma GCC diagnostic pop
#pragma GCC pop_options
