// src/backends/cpu/kquant_avx512.cpp — K-quant (Q2_K..Q6_K) prefill with int8 activations on AVX-512 VNNI, for
// CPUs without AMX: the same integer products as kquant_linear_int8_ref (kquant_int8.h), bit for bit. Per group
// of 16 weight rows, every super-block is rewritten once per call with the 16 rows in the 16 dword lanes (4
// consecutive unsigned codes per dword), so that one vpdpbusd multiplies 16 rows by a broadcast quad of a token's
// int8 activations. Each half-block's (or block's) int32 sum is multiplied by its integer scale (vpmulld); the
// code offset (Q6_K 32, Q3_K 4) and the minimums meet the activations' half-block sums through vpdpwssd. Per
// super-block the exact int32 sums go through one f32 step with the row's d / dmin and the token's d_x. Tiles of
// 8 tokens share each weight load. The target pragma covers only code below the includes.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "backends/cpu/gguf_interleaved.h"
#include "backends/cpu/kquant_int8.h"
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
constexpr int kQuads = 64;       // dwords (4 codes) per super-block row
constexpr int kHalves = 16;      // 16-weight half-blocks per super-block

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

void fill_group(const QuantWeight& w, int64_t r0, const KQuantForm& form, KQuantLaneGroup& g) {
  const int64_t nsb = w.cols / kSuper;
  g.resize(nsb, kLanes);
  alignas(64) uint8_t c[kLanes][kSuper];
  int16_t sc[kLanes][kHalves], m[kLanes][kHalves];
  for (int64_t sb = 0; sb < nsb; ++sb) {
    kquant_lane_rows<kLanes>(w, r0, sb, form, c, sc, m, g.d.data() + sb * kLanes, g.dmin.data() + sb * kLanes, 1);
    int32_t* cd = g.codes.data() + sb * kQuads * kLanes;
    for (int i = 0; i < 4; ++i) {  // dwords 16 i .. 16 i + 15 of the 16 rows
      __m512i v[kLanes];
      for (int r = 0; r < kLanes; ++r) v[r] = _mm512_load_si512(c[r] + 64 * i);
      transpose_16x16(v);
      for (int q = 0; q < kLanes; ++q) _mm512_storeu_si512(cd + (16 * i + q) * kLanes, v[q]);
    }
    // Scales per half-block (int32), and the int16 pairs of scales and minimums (a row's 16 int16 are its 8 pair
    // dwords as they lie in memory).
    __m512i v[kLanes];
    for (int r = 0; r < kLanes; ++r) v[r] = _mm512_cvtepi16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(sc[r])));
    transpose_16x16(v);
    for (int j = 0; j < kHalves; ++j) _mm512_storeu_si512(g.scales.data() + (sb * kHalves + j) * kLanes, v[j]);
    for (auto [src, dst] : {std::pair{&sc, g.scale_pairs.data()}, std::pair{&m, g.min_pairs.data()}}) {
      for (int r = 0; r < kLanes; ++r)
        v[r] = _mm512_zextsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>((*src)[r])));
      transpose_16x16(v);
      for (int j = 0; j < 8; ++j) _mm512_storeu_si512(dst + (sb * 8 + j) * kLanes, v[j]);
    }
  }
}

// Sum over half-block pairs j of pairs[j] (16 rows) . bs[t][j] (vpdpwssd), for T tokens.
template <int T>
inline void pair_sums(const int32_t* pairs, const int32_t* bs, int64_t bs_stride, __m512i (&out)[T]) {
#pragma GCC unroll 8
  for (int t = 0; t < T; ++t) out[t] = _mm512_setzero_si512();
  for (int j = 0; j < 8; ++j) {
    const __m512i pv = _mm512_loadu_si512(pairs + j * kLanes);
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) out[t] = _mm512_dpwssd_epi32(out[t], pv, _mm512_set1_epi32(bs[t * bs_stride + j]));
  }
}

// Per super-block: for each half-block (SUB = 16) or block (32) the codes times the activations (vpdpbusd:
// unsigned codes x signed activations), times its scale (vpmulld), summed; minus offset x sum of scale x half-block
// activation sums; the minimum term likewise.
template <int T, int SUB, int OFFSET_SHIFT, bool MIN>
void token_tile(const KQuantLaneInput& a, const KQuantLaneGroup& g, int64_t r0, int64_t t0) {
  const int64_t N = a.w->rows, K = a.w->cols, nsb = K / kSuper;
  constexpr int kQ = SUB / 4;  // dwords per scale
  __m512 acc[T];
#pragma GCC unroll 8
  for (auto& v : acc) v = _mm512_setzero_ps();
  for (int64_t sb = 0; sb < nsb; ++sb) {
    __m512i is[T];
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) is[t] = _mm512_setzero_si512();
    const int32_t* cd = g.codes.data() + sb * kQuads * kLanes;
    const int32_t* xs = a.x.data() + t0 * (K / 4) + sb * kQuads;
    for (int h = 0; h < kSuper / SUB; ++h) {
      __m512i part[T];
#pragma GCC unroll 8
      for (int t = 0; t < T; ++t) part[t] = _mm512_setzero_si512();
      for (int q = 0; q < kQ; ++q) {
        const __m512i wv = _mm512_loadu_si512(cd + (h * kQ + q) * kLanes);
#pragma GCC unroll 8
        for (int t = 0; t < T; ++t)
          part[t] = _mm512_dpbusd_epi32(part[t], wv, _mm512_set1_epi32(xs[t * (K / 4) + h * kQ + q]));
      }
      const __m512i scv = _mm512_loadu_si512(g.scales.data() + (sb * kHalves + h * (SUB / 16)) * kLanes);
#pragma GCC unroll 8
      for (int t = 0; t < T; ++t) is[t] = _mm512_add_epi32(is[t], _mm512_mullo_epi32(part[t], scv));
    }
    const int32_t* bs = a.bs.data() + (t0 * nsb + sb) * 8;
    if constexpr (OFFSET_SHIFT > 0) {
      __m512i os[T];
      pair_sums<T>(g.scale_pairs.data() + sb * 8 * kLanes, bs, nsb * 8, os);
#pragma GCC unroll 8
      for (int t = 0; t < T; ++t) is[t] = _mm512_sub_epi32(is[t], _mm512_slli_epi32(os[t], OFFSET_SHIFT));
    }
    const __m512 dv = _mm512_loadu_ps(g.d.data() + sb * kLanes);
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t)
      acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(is[t]), _mm512_mul_ps(dv, _mm512_set1_ps(a.act.d[size_t((t0 + t) * nsb + sb)])), acc[t]);
    if constexpr (MIN) {
      __m512i ms[T];
      pair_sums<T>(g.min_pairs.data() + sb * 8 * kLanes, bs, nsb * 8, ms);
      const __m512 dmv = _mm512_loadu_ps(g.dmin.data() + sb * kLanes);
#pragma GCC unroll 8
      for (int t = 0; t < T; ++t)
        acc[t] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(ms[t]), _mm512_mul_ps(dmv, _mm512_set1_ps(a.act.d[size_t((t0 + t) * nsb + sb)])),
                                  acc[t]);
    }
  }
  const __mmask16 rmask = __mmask16((1u << std::min<int64_t>(kLanes, N - r0)) - 1u);
#pragma GCC unroll 8
  for (int t = 0; t < T; ++t) _mm512_mask_storeu_ps(a.y + (t0 + t) * N + r0, rmask, acc[t]);
}

template <int SUB, int OFFSET_SHIFT, bool MIN>
void lane_groups(const KQuantLaneInput& a, const KQuantForm& form, int64_t g0, int64_t g1) {
  thread_local KQuantLaneGroup g;
  for (int64_t gi = g0; gi < g1; ++gi) {
    const int64_t r0 = gi * kLanes;
    fill_group(*a.w, r0, form, g);
    int64_t t = 0;
    for (; t + kTokens <= a.n; t += kTokens) token_tile<kTokens, SUB, OFFSET_SHIFT, MIN>(a, g, r0, t);
    if (t < a.n)
      remainder_tile<kTokens - 1>(a.n - t, [&](auto tile) {
        token_tile<decltype(tile)::value, SUB, OFFSET_SHIFT, MIN>(a, g, r0, t);
      });
  }
}

}  // namespace

bool kquant_avx512_applies(const QuantWeight& w, int64_t n_tokens) { return kquant_lane_applies(w, n_tokens, Isa::Avx512); }

void kquant_linear_avx512(const QuantWeight& w, const float* x, int64_t n_tokens, float* y) {
  if (!isa_supported(Isa::Avx512)) throw Error("kquant_linear_avx512: this CPU has no AVX-512 VNNI");
  thread_local KQuantLaneInput reused;  // its buffers live across calls; the workers see it through `a`
  KQuantLaneInput& a = reused;
  if (!kquant_lane_input("kquant_linear_avx512", w, x, n_tokens, y, a)) return;
  const int64_t N = w.rows;
  const int64_t groups = (N + kLanes - 1) / kLanes;
  const KQuantForm form = kquant_form(w.format);
  ThreadPool::global().parallel_for(groups, 1, [&](int64_t g0, int64_t g1) {
    if (form.sub == 32) lane_groups<32, 0, true>(a, form, g0, g1);          // Q4_K, Q5_K
    else if (form.offset == 32) lane_groups<16, 5, false>(a, form, g0, g1);  // Q6_K
    else if (form.offset == 4) lane_groups<16, 2, false>(a, form, g0, g1);   // Q3_K
    else lane_groups<16, 0, true>(a, form, g0, g1);                          // Q2_K
  });
}

}  // namespace qforge::cpu_quant

#pragma GCC diagnostic pop
#pragma GCC pop_options
