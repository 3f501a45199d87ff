// src/backends/cpu/kquant_avx512.cpp — K-quant (Q2_K..Q6_K) prefill with int8 activations on AVX-512 VNNI, for
// CPUs without AMX: the same integer products as kquant_linear_int8_ref (kquant_amx.h), bit for bit. Per group
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
constexpr int kQuads = 64;       // dwords (4 codes) per super-block row
constexpr int kHalves = 16;      // 16-weight half-blocks per super-block

// 16 rows in the kernel's form, per super-block: codes [64][16] dwords (4 consecutive unsigned codes of a
// row), scales [16][16] int32 (half-block j of each row), scale and minimum pairs [8][16] (int16 pairs of
// half-blocks 2j, 2j+1), d / dmin [16]. Rows past the weight are zero.
struct LaneGroup {
  std::vector<int32_t> codes, scales, scale_pairs, min_pairs;
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

void fill_group(const QuantWeight& w, int64_t r0, const KQuantForm& form, LaneGroup& g) {
  const int64_t nsb = w.cols / kSuper, row_bytes = int64_t(w.data.nbytes()) / w.rows, sb_bytes = row_bytes / nsb;
  g.codes.resize(size_t(nsb * kQuads * kLanes));
  g.scales.resize(size_t(nsb * kHalves * kLanes));
  g.scale_pairs.resize(size_t(nsb * 8 * kLanes));
  g.min_pairs.resize(size_t(nsb * 8 * kLanes));
  g.d.assign(size_t(nsb * kLanes), 0.0f);
  g.dmin.assign(size_t(nsb * kLanes), 0.0f);
  alignas(64) uint8_t c[kLanes][kSuper];
  int16_t sc[kLanes][kHalves], m[kLanes][kHalves];
  const __m256i offset = _mm256_set1_epi8(char(form.offset));
  for (int64_t sb = 0; sb < nsb; ++sb) {
    for (int r = 0; r < kLanes; ++r) {
      if (r0 + r >= w.rows) {
        std::memset(c[r], 0, sizeof c[r]);
        std::memset(sc[r], 0, sizeof sc[r]);
        std::memset(m[r], 0, sizeof m[r]);
        continue;
      }
      const uint8_t* blk = static_cast<const uint8_t*>(w.data.raw()) + (r0 + r) * row_bytes + sb * sb_bytes;
      kquant_chunks(w.format, blk, g.d[size_t(sb * kLanes + r)], g.dmin[size_t(sb * kLanes + r)],
                    [&](int i, __m256i v, int sc0, int sc1, int m0, int m1) {
                      _mm256_store_si256(reinterpret_cast<__m256i*>(c[r] + 32 * i), _mm256_add_epi8(v, offset));
                      sc[r][2 * i] = int16_t(sc0);
                      sc[r][2 * i + 1] = int16_t(sc1);
                      m[r][2 * i] = int16_t(m0);
                      m[r][2 * i + 1] = int16_t(m1);
                    });
    }
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

struct Call {
  const QuantWeight* w = nullptr;
  const int32_t* x = nullptr;   // [n][K / 4] the int8 activations, 4 per dword
  const int32_t* bs = nullptr;  // [n][nsb][8] int16 pairs of the half-block sums of the int8 activations
  const float* dx = nullptr;    // [n][nsb]
  int64_t n = 0;
  float* y = nullptr;
};

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
void token_tile(const Call& a, const LaneGroup& g, int64_t r0, int64_t t0) {
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
    const int32_t* xs = a.x + t0 * (K / 4) + sb * kQuads;
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
    const int32_t* bs = a.bs + (t0 * nsb + sb) * 8;
    if constexpr (OFFSET_SHIFT > 0) {
      __m512i os[T];
      pair_sums<T>(g.scale_pairs.data() + sb * 8 * kLanes, bs, nsb * 8, os);
#pragma GCC unroll 8
      for (int t = 0; t < T; ++t) is[t] = _mm512_sub_epi32(is[t], _mm512_slli_epi32(os[t], OFFSET_SHIFT));
    }
    const __m512 dv = _mm512_loadu_ps(g.d.data() + sb * kLanes);
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t)
      acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(is[t]), _mm512_mul_ps(dv, _mm512_set1_ps(a.dx[(t0 + t) * nsb + sb])), acc[t]);
    if constexpr (MIN) {
      __m512i ms[T];
      pair_sums<T>(g.min_pairs.data() + sb * 8 * kLanes, bs, nsb * 8, ms);
      const __m512 dmv = _mm512_loadu_ps(g.dmin.data() + sb * kLanes);
#pragma GCC unroll 8
      for (int t = 0; t < T; ++t)
        acc[t] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(ms[t]), _mm512_mul_ps(dmv, _mm512_set1_ps(a.dx[(t0 + t) * nsb + sb])),
                                  acc[t]);
    }
  }
  const __mmask16 rmask = __mmask16((1u << std::min<int64_t>(kLanes, N - r0)) - 1u);
#pragma GCC unroll 8
  for (int t = 0; t < T; ++t) _mm512_mask_storeu_ps(a.y + (t0 + t) * N + r0, rmask, acc[t]);
}

template <int SUB, int OFFSET_SHIFT, bool MIN>
void lane_groups(const Call& a, const KQuantForm& form, int64_t g0, int64_t g1) {
  thread_local LaneGroup g;
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

bool kquant_avx512_applies(const QuantWeight& w, int64_t n_tokens) {
  return kquant_int8_prefill_enabled() && kquant_int8_format(w.format) && w.cols % kSuper == 0 && w.cols > 0 && n_tokens >= kKQuantInt8MinTokens &&
         best_isa() == Isa::Avx512;
}

void kquant_linear_avx512(const QuantWeight& w, const float* x, int64_t n_tokens, float* y) {
  if (!kquant_int8_format(w.format) || w.cols % kSuper != 0)
    throw Error("kquant_linear_avx512: needs a K-quant weight with whole super-blocks (got " +
                std::string(quant_traits(w.format).name) + ", " + std::to_string(w.cols) + " columns)");
  if (!isa_supported(Isa::Avx512)) throw Error("kquant_linear_avx512: this CPU has no AVX-512 VNNI");
  const int64_t N = w.rows, K = w.cols;
  if (N == 0 || n_tokens == 0) return;
  KQuantAct act;
  quantize_act_k(x, n_tokens, K, act);
  std::vector<int32_t> xp(size_t(n_tokens * K / 4)), bs;
  std::memcpy(xp.data(), act.q.data(), size_t(n_tokens * K));
  kquant_half_sums(act, n_tokens, K, bs);
  Call a;
  a.w = &w;
  a.x = xp.data();
  a.bs = bs.data();
  a.dx = act.d.data();
  a.n = n_tokens;
  a.y = y;
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
