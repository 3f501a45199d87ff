// src/backends/cpu/kquant_avx2.cpp — K-quant (Q2_K..Q6_K) prefill with int8 activations on AVX2 (CPUs without
// AVX-512: most laptops), bit-identical to kquant_linear_int8_ref (kquant_int8.h). The form of the AVX-512 kernel
// (kquant_avx512.cpp) with 8 weight rows in the 8 dword lanes: per super-block the codes of a row group are
// rewritten once per call as dwords of 4 consecutive unsigned codes; vpmaddubsw multiplies them by a broadcast
// quad of a token's int8 activations (no saturation: codes <= 63), two such results add in int16 (<= 32004),
// and vpmaddwd by the half-block's scale (both halves of each dword) gives the scaled int32 sums. Offsets and
// minimums meet the activations' half-block sums through vpmaddwd. Tiles of 4 tokens share each weight load.
// The target pragma covers only code below the includes.
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
#pragma GCC target("avx2,fma,f16c")

#include "backends/cpu/kquant_chunks.h"

namespace qforge::cpu_quant {
namespace {

constexpr int kLanes = 8;        // weight rows per group (one per dword lane)
constexpr int kTokens = 4;       // tokens per tile
constexpr int64_t kSuper = 256;
constexpr int kQuads = 64;       // dwords (4 codes) per super-block row
constexpr int kHalves = 16;      // 16-weight half-blocks per super-block

// v[r] (8 dwords of row r) -> v[c] (dword c of the 8 rows).
inline void transpose_8x8(__m256i (&v)[8]) {
  __m256i t[8], u[8];
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_epi32(v[2 * i], v[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_epi32(v[2 * i], v[2 * i + 1]);
  }
  for (int i = 0; i < 2; ++i) {  // lane L of u[4i + c]: rows 4i .. 4i+3 of column 4L + c
    u[4 * i] = _mm256_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
    u[4 * i + 1] = _mm256_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
    u[4 * i + 2] = _mm256_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
    u[4 * i + 3] = _mm256_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
  }
  for (int c = 0; c < 4; ++c) {
    v[c] = _mm256_permute2x128_si256(u[c], u[4 + c], 0x20);
    v[4 + c] = _mm256_permute2x128_si256(u[c], u[4 + c], 0x31);
  }
}

// Stores the 8 rows' 8-dword vectors src[r] transposed: dword c of every row to dst + c * 8, c < n.
inline void store_transposed(__m256i (&v)[8], int32_t* dst, int n) {
  transpose_8x8(v);
  for (int c = 0; c < n; ++c) _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + c * kLanes), v[c]);
}

void fill_group(const QuantWeight& w, int64_t r0, const KQuantForm& form, KQuantLaneGroup& g) {
  const int64_t nsb = w.cols / kSuper;
  g.resize(nsb, kLanes);
  alignas(32) uint8_t c[kLanes][kSuper];
  alignas(32) int16_t sc[kLanes][kHalves], m[kLanes][kHalves];
  for (int64_t sb = 0; sb < nsb; ++sb) {
    kquant_lane_rows<kLanes>(w, r0, sb, form, c, sc, m, g.d.data() + sb * kLanes, g.dmin.data() + sb * kLanes, 1);
    __m256i v[kLanes];
    for (int i = 0; i < 8; ++i) {  // dwords 8 i .. 8 i + 7 of the 8 rows
      for (int r = 0; r < kLanes; ++r) v[r] = _mm256_load_si256(reinterpret_cast<const __m256i*>(c[r] + 32 * i));
      store_transposed(v, g.codes.data() + (sb * kQuads + 8 * i) * kLanes, 8);
    }
    for (int h = 0; h < 2; ++h) {  // half-blocks 8 h .. 8 h + 7, each scale in both int16 halves
      for (int r = 0; r < kLanes; ++r) {
        const __m256i s = _mm256_cvtepi16_epi32(_mm_load_si128(reinterpret_cast<const __m128i*>(sc[r] + 8 * h)));
        v[r] = _mm256_or_si256(_mm256_and_si256(s, _mm256_set1_epi32(0xFFFF)), _mm256_slli_epi32(s, 16));
      }
      store_transposed(v, g.scales.data() + (sb * kHalves + 8 * h) * kLanes, 8);
    }
    for (auto [src, dst] : {std::pair{&sc, g.scale_pairs.data()}, std::pair{&m, g.min_pairs.data()}}) {
      for (int r = 0; r < kLanes; ++r) v[r] = _mm256_load_si256(reinterpret_cast<const __m256i*>((*src)[r]));
      store_transposed(v, dst + sb * 8 * kLanes, 8);
    }
  }
}

// Sum over half-block pairs j of pairs[j] (8 rows) . bs[t][j] (vpmaddwd), for T tokens.
template <int T>
inline void pair_sums(const int32_t* pairs, const int32_t* bs, int64_t bs_stride, __m256i (&out)[T]) {
#pragma GCC unroll 4
  for (int t = 0; t < T; ++t) out[t] = _mm256_setzero_si256();
  for (int j = 0; j < 8; ++j) {
    const __m256i pv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(pairs + j * kLanes));
#pragma GCC unroll 4
    for (int t = 0; t < T; ++t)
      out[t] = _mm256_add_epi32(out[t], _mm256_madd_epi16(pv, _mm256_set1_epi32(bs[t * bs_stride + j])));
  }
}

template <int T, int OFFSET_SHIFT, bool MIN>
void token_tile(const KQuantLaneInput& a, const KQuantLaneGroup& g, int64_t r0, int64_t t0) {
  const int64_t N = a.w->rows, K = a.w->cols, nsb = K / kSuper;
  __m256 acc[T];
#pragma GCC unroll 4
  for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps();
  for (int64_t sb = 0; sb < nsb; ++sb) {
    __m256i is[T];
#pragma GCC unroll 4
    for (int t = 0; t < T; ++t) is[t] = _mm256_setzero_si256();
    const int32_t* cd = g.codes.data() + sb * kQuads * kLanes;
    const int32_t* xs = a.x.data() + t0 * (K / 4) + sb * kQuads;
    for (int h = 0; h < 2 * kHalves; ++h) {  // pairs of quads (8 k); half-block h / 2
      const __m256i w0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(cd + (2 * h) * kLanes));
      const __m256i w1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(cd + (2 * h + 1) * kLanes));
      const __m256i scv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(g.scales.data() + (sb * kHalves + h / 2) * kLanes));
#pragma GCC unroll 4
      for (int t = 0; t < T; ++t) {
        const int32_t* xt = xs + t * (K / 4) + 2 * h;
        const __m256i s16 = _mm256_add_epi16(_mm256_maddubs_epi16(w0, _mm256_set1_epi32(xt[0])),
                                             _mm256_maddubs_epi16(w1, _mm256_set1_epi32(xt[1])));
        is[t] = _mm256_add_epi32(is[t], _mm256_madd_epi16(s16, scv));
      }
    }
    const int32_t* bs = a.bs.data() + (t0 * nsb + sb) * 8;
    if constexpr (OFFSET_SHIFT > 0) {
      __m256i os[T];
      pair_sums<T>(g.scale_pairs.data() + sb * 8 * kLanes, bs, nsb * 8, os);
#pragma GCC unroll 4
      for (int t = 0; t < T; ++t) is[t] = _mm256_sub_epi32(is[t], _mm256_slli_epi32(os[t], OFFSET_SHIFT));
    }
    const __m256 dv = _mm256_loadu_ps(g.d.data() + sb * kLanes);
#pragma GCC unroll 4
    for (int t = 0; t < T; ++t)
      acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(is[t]), _mm256_mul_ps(dv, _mm256_set1_ps(a.act.d[size_t((t0 + t) * nsb + sb)])), acc[t]);
    if constexpr (MIN) {
      __m256i ms[T];
      pair_sums<T>(g.min_pairs.data() + sb * 8 * kLanes, bs, nsb * 8, ms);
      const __m256 dmv = _mm256_loadu_ps(g.dmin.data() + sb * kLanes);
#pragma GCC unroll 4
      for (int t = 0; t < T; ++t)
        acc[t] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(ms[t]), _mm256_mul_ps(dmv, _mm256_set1_ps(a.act.d[size_t((t0 + t) * nsb + sb)])),
                                  acc[t]);
    }
  }
  const int64_t nr = std::min<int64_t>(kLanes, N - r0);
  const __m256i rmask = _mm256_cmpgt_epi32(_mm256_set1_epi32(int(nr)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  for (int t = 0; t < T; ++t) _mm256_maskstore_ps(a.y + (t0 + t) * N + r0, rmask, acc[t]);
}

template <int OFFSET_SHIFT, bool MIN>
void lane_groups(const KQuantLaneInput& a, const KQuantForm& form, int64_t g0, int64_t g1) {
  thread_local KQuantLaneGroup g;
  for (int64_t gi = g0; gi < g1; ++gi) {
    const int64_t r0 = gi * kLanes;
    fill_group(*a.w, r0, form, g);
    int64_t t = 0;
    for (; t + kTokens <= a.n; t += kTokens) token_tile<kTokens, OFFSET_SHIFT, MIN>(a, g, r0, t);
    if (t < a.n)
      remainder_tile<kTokens - 1>(a.n - t, [&](auto tile) { token_tile<decltype(tile)::value, OFFSET_SHIFT, MIN>(a, g, r0, t); });
  }
}

}  // namespace

bool kquant_avx2_applies(const QuantWeight& w, int64_t n_tokens) { return kquant_lane_applies(w, n_tokens, Isa::Avx2); }

void kquant_linear_avx2(const QuantWeight& w, const float* x, int64_t n_tokens, float* y) {
  if (!isa_supported(Isa::Avx2)) throw Error("kquant_linear_avx2: this CPU has no AVX2");
  thread_local KQuantLaneInput reused;  // its buffers live across calls; the workers see it through `a`
  KQuantLaneInput& a = reused;
  if (!kquant_lane_input("kquant_linear_avx2", w, x, n_tokens, y, a)) return;
  const int64_t N = w.rows;
  const int64_t groups = (N + kLanes - 1) / kLanes;
  const KQuantForm form = kquant_form(w.format);
  ThreadPool::global().parallel_for(groups, 1, [&](int64_t g0, int64_t g1) {
    if (form.offset == 32) lane_groups<5, false>(a, form, g0, g1);     // Q6_K
    else if (form.offset == 4) lane_groups<2, false>(a, form, g0, g1);  // Q3_K
    else lane_groups<0, true>(a, form, g0, g1);                         // Q2_K, Q4_K, Q5_K
  });
}

}  // namespace qforge::cpu_quant

#pragma GCC pop_options
