// src/backends/cpu/gguf_interleaved_avx2.cpp — AVX2 kernels over the interleaved q4_0 / q8_0 layout
// (gguf_interleaved.h), decode and prefill, compiled with -mavx2 -mfma -mf16c and only called when the CPU
// has them. q4_0: per block of 32 columns, two rows' nibbles per ymm (one 128-bit lane per row), split once
// for up to 2 tokens, vpmaddubsw against each token's activation halves broadcast to both lanes (pair
// sums <= 2*15*127, no saturation) + vpmaddwd. q8_0: one row per ymm, |w| once per block, the token's
// activations given w's signs (vpsignb: pair sums <= 2*128*127, no saturation), vpmaddubsw + vpmaddwd,
// the 8 rows' sums gathered into one ymm by horizontal adds. The 8 scales: one vcvtph2ps.
#include <immintrin.h>

#include <cstdint>

#include "backends/cpu/gguf_interleaved.h"

namespace qforge::cpu_quant {

namespace {

// T tokens [t0, t0 + T) of one group: each row pair's nibbles are split once per block and used for all
// T tokens (16 ymm registers bound T to 2 here).
template <int T>
void q4_group_tokens(const GroupArgs& a, int64_t g, int64_t t0, const char* end, bool prefetch) {
  const int64_t nb = a.nb;
  const uint8_t* grp = a.data + g * nb * kQ4GroupBlockBytes;
  const __m256i m4 = _mm256_set1_epi8(15), ones = _mm256_set1_epi16(1);
  const __m256i perm[4] = {_mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1), _mm256_setr_epi32(2, 2, 2, 2, 3, 3, 3, 3),
                           _mm256_setr_epi32(4, 4, 4, 4, 5, 5, 5, 5), _mm256_setr_epi32(6, 6, 6, 6, 7, 7, 7, 7)};
  __m256 acc[T][4];
  for (int i = 0; i < T; ++i)
    for (int j = 0; j < 4; ++j) acc[i][j] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* blk = grp + b * kQ4GroupBlockBytes;
    if (prefetch) prefetch_ahead(blk, kQ4GroupBlockBytes, end);
    const __m256 dw8 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk)));
    __m256i xlo[T], xhi[T];
    __m256 sx[T], cx[T];
    for (int i = 0; i < T; ++i) {
      const int64_t t = t0 + i;
      const int8_t* xq = a.xq + (t * nb + b) * 32;
      xlo[i] = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(xq)));
      xhi[i] = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(xq + 16)));
      sx[i] = _mm256_set1_ps(a.dx[t * nb + b]);
      cx[i] = _mm256_set1_ps(2.0f * a.dsum[t * nb + b]);
    }
    for (int j = 0; j < 4; ++j) {
      const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 16 + 32 * j));
      const __m256i lo = _mm256_and_si256(q, m4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
      const __m256 w = _mm256_permutevar8x32_ps(dw8, perm[j]);
      for (int i = 0; i < T; ++i) {
        const __m256i s16 = _mm256_add_epi16(_mm256_maddubs_epi16(lo, xlo[i]), _mm256_maddubs_epi16(hi, xhi[i]));
        const __m256 dot = _mm256_cvtepi32_ps(_mm256_madd_epi16(s16, ones));
        acc[i][j] = _mm256_fmadd_ps(_mm256_fmsub_ps(dot, sx[i], cx[i]), w, acc[i][j]);
      }
    }
  }
  for (int i = 0; i < T; ++i) {
    alignas(32) float lanes[8];
    float out[8];
    for (int j = 0; j < 4; ++j) {
      _mm256_store_ps(lanes, acc[i][j]);
      out[2 * j] = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
      out[2 * j + 1] = (lanes[4] + lanes[5]) + (lanes[6] + lanes[7]);
    }
    store_group(a, g, t0 + i, out);
  }
}
// The 8 int32 lanes of each of 8 rows' sums -> one ymm holding row r's total in lane r.
inline __m256i row_totals(const __m256i (&s)[8]) {
  const __m256i h01 = _mm256_hadd_epi32(s[0], s[1]), h23 = _mm256_hadd_epi32(s[2], s[3]);
  const __m256i h45 = _mm256_hadd_epi32(s[4], s[5]), h67 = _mm256_hadd_epi32(s[6], s[7]);
  const __m256i h0123 = _mm256_hadd_epi32(h01, h23), h4567 = _mm256_hadd_epi32(h45, h67);
  // h0123 lanes: r0 r1 r2 r3 (low 128) | r0 r1 r2 r3 (high 128), partial each; same for rows 4-7.
  return _mm256_add_epi32(_mm256_permute2x128_si256(h0123, h4567, 0x20), _mm256_permute2x128_si256(h0123, h4567, 0x31));
}

// q8_0: T tokens [t0, t0 + T) of one group: |w| of the 8 rows once per block, used for all T tokens.
template <int T>
void q8_group_tokens(const GroupArgs& a, int64_t g, int64_t t0, const char* end, bool prefetch) {
  const int64_t nb = a.nb;
  const uint8_t* grp = a.data + g * nb * kQ8GroupBlockBytes;
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc[T];
  for (int i = 0; i < T; ++i) acc[i] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* blk = grp + b * kQ8GroupBlockBytes;
    if (prefetch) prefetch_ahead(blk, kQ8GroupBlockBytes, end);
    const __m256 dw8 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk)));
    __m256i w[8];
    for (int r = 0; r < 8; ++r) w[r] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 16 + 32 * r));
    for (int i = 0; i < T; ++i) {
      const int64_t t = t0 + i;
      const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.xq + (t * nb + b) * 32));
      __m256i s[8];
      for (int r = 0; r < 8; ++r)
        s[r] = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(w[r], w[r]), _mm256_sign_epi8(x, w[r])), ones);
      const __m256 dot = _mm256_cvtepi32_ps(row_totals(s));
      acc[i] = _mm256_fmadd_ps(dot, _mm256_mul_ps(dw8, _mm256_set1_ps(a.dx[t * nb + b])), acc[i]);
    }
  }
  for (int i = 0; i < T; ++i) {
    alignas(32) float out[8];
    _mm256_store_ps(out, acc[i]);
    store_group(a, g, t0 + i, out);
  }
}
}  // namespace

void q8x8_groups_avx2(const GroupArgs& a, int64_t g0, int64_t g1) {
  run_groups<2>(a, g0, g1, kQ8GroupBlockBytes, [&](auto tile, int64_t g, int64_t t, const char* end, bool prefetch) {
    q8_group_tokens<decltype(tile)::value>(a, g, t, end, prefetch);
  });
}

void q4x8_groups_avx2(const GroupArgs& a, int64_t g0, int64_t g1) {
  run_groups<2>(a, g0, g1, kQ4GroupBlockBytes, [&](auto tile, int64_t g, int64_t t, const char* end, bool prefetch) {
    q4_group_tokens<decltype(tile)::value>(a, g, t, end, prefetch);
  });
}

}  // namespace qforge::cpu_quant
