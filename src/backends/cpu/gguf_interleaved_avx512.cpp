// src/backends/cpu/gguf_interleaved_avx512.cpp — AVX-512 VNNI kernels over the interleaved q4_0 / q8_0
// layout (gguf_interleaved.h), decode and prefill. Per block of 32 columns and group of 8 rows:
// q4_0: the nibbles in two zmm (4 rows per zmm, one 128-bit lane per row), split once for up to 8 tokens;
// q8_0: the int8 codes in four zmm (2 rows per zmm), flipped to unsigned (w + 128) once for up to 4 tokens;
// then vpdpbusd against each token's activations broadcast to every row and the offset (8 or 128 times
// the block's activation sum) taken off in f32; the 8 scales converted with one vcvtph2ps. Only called
// when best_isa() is Avx512; the target pragma covers only code below the includes.
#include <immintrin.h>

#include <cstdint>

#include "backends/cpu/gguf_interleaved.h"

#pragma GCC push_options
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c")

namespace qforge::cpu_quant {
namespace {

// The 4 rows of one zmm: sum of each 128-bit lane.
inline void lane_sums(__m512 v, float* out) {
  alignas(64) float t[16];
  _mm512_store_ps(t, v);
  for (int i = 0; i < 4; ++i) out[i] = (t[4 * i] + t[4 * i + 1]) + (t[4 * i + 2] + t[4 * i + 3]);
}

// T tokens [t0, t0 + T) of one group: each block's nibbles are split and its scales permuted once, then
// used for all T tokens (prefill reuses the weights from registers, not only from cache).
template <int T>
void q4_group_tokens(const GroupArgs& a, int64_t g, int64_t t0, const char* end, bool prefetch) {
  const int64_t nb = a.nb;
  const uint8_t* grp = a.data + g * nb * kQ4GroupBlockBytes;
  const __m512i perm0 = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
  const __m512i perm1 = _mm512_setr_epi32(4, 4, 4, 4, 5, 5, 5, 5, 6, 6, 6, 6, 7, 7, 7, 7);
  const __m512i m4 = _mm512_set1_epi8(15);
  __m512 acc0[T], acc1[T];
  for (int i = 0; i < T; ++i) acc0[i] = acc1[i] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* blk = grp + b * kQ4GroupBlockBytes;
    if (prefetch) prefetch_ahead(blk, kQ4GroupBlockBytes, end);
    const __m512 dw8 = _mm512_castps256_ps512(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk))));
    const __m512 w0 = _mm512_permutexvar_ps(perm0, dw8), w1 = _mm512_permutexvar_ps(perm1, dw8);
    const __m512i q0 = _mm512_loadu_si512(blk + 16), q1 = _mm512_loadu_si512(blk + 80);
    const __m512i lo0 = _mm512_and_si512(q0, m4), hi0 = _mm512_and_si512(_mm512_srli_epi16(q0, 4), m4);
    const __m512i lo1 = _mm512_and_si512(q1, m4), hi1 = _mm512_and_si512(_mm512_srli_epi16(q1, 4), m4);
    for (int i = 0; i < T; ++i) {
      const int64_t t = t0 + i;
      const int8_t* xq = a.xq + (t * nb + b) * 32;
      const __m512i xlo = _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(xq)));
      const __m512i xhi = _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(xq + 16)));
      const __m512i d0 = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), lo0, xlo), hi0, xhi);
      const __m512i d1 = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), lo1, xlo), hi1, xhi);
      // Per lane: d_w (d_x dot - 8 d_x sum(x_q) / 4), the offset spread over the row's 4 lanes.
      const __m512 sx = _mm512_set1_ps(a.dx[t * nb + b]), cx = _mm512_set1_ps(2.0f * a.dsum[t * nb + b]);
      acc0[i] = _mm512_fmadd_ps(_mm512_fmsub_ps(_mm512_cvtepi32_ps(d0), sx, cx), w0, acc0[i]);
      acc1[i] = _mm512_fmadd_ps(_mm512_fmsub_ps(_mm512_cvtepi32_ps(d1), sx, cx), w1, acc1[i]);
    }
  }
  for (int i = 0; i < T; ++i) {
    float out[8];
    lane_sums(acc0[i], out);
    lane_sums(acc1[i], out + 4);
    store_group(a, g, t0 + i, out);
  }
}
// q8_0: T tokens [t0, t0 + T) of one group (16 accumulators + 4 code + 4 scale zmm bound T to 4).
template <int T>
void q8_group_tokens(const GroupArgs& a, int64_t g, int64_t t0, const char* end, bool prefetch) {
  const int64_t nb = a.nb;
  const uint8_t* grp = a.data + g * nb * kQ8GroupBlockBytes;
  const __m512i flip = _mm512_set1_epi8(char(0x80));
  __m512i pick[4];
  for (int j = 0; j < 4; ++j)
    pick[j] = _mm512_setr_epi32(2 * j, 2 * j, 2 * j, 2 * j, 2 * j, 2 * j, 2 * j, 2 * j, 2 * j + 1, 2 * j + 1, 2 * j + 1,
                                2 * j + 1, 2 * j + 1, 2 * j + 1, 2 * j + 1, 2 * j + 1);
  __m512 acc[T][4];
  for (int i = 0; i < T; ++i)
    for (int j = 0; j < 4; ++j) acc[i][j] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* blk = grp + b * kQ8GroupBlockBytes;
    if (prefetch) prefetch_ahead(blk, kQ8GroupBlockBytes, end);
    const __m512 dw8 = _mm512_castps256_ps512(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk))));
    __m512i w[4];
    __m512 ws[4];
    for (int j = 0; j < 4; ++j) {  // rows 2j (lanes 0-7) and 2j + 1 (lanes 8-15)
      w[j] = _mm512_xor_si512(_mm512_loadu_si512(blk + 16 + 64 * j), flip);  // w + 128 as unsigned
      ws[j] = _mm512_permutexvar_ps(pick[j], dw8);
    }
    for (int i = 0; i < T; ++i) {
      const int64_t t = t0 + i;
      const __m512i xb =
          _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.xq + (t * nb + b) * 32)));
      // Per lane: d_w (d_x dot - 128 d_x sum(x_q) / 8), the offset spread over the row's 8 lanes.
      const __m512 sx = _mm512_set1_ps(a.dx[t * nb + b]), cx = _mm512_set1_ps(16.0f * a.dsum[t * nb + b]);
      for (int j = 0; j < 4; ++j) {
        const __m512i d = _mm512_dpbusd_epi32(_mm512_setzero_si512(), w[j], xb);
        acc[i][j] = _mm512_fmadd_ps(_mm512_fmsub_ps(_mm512_cvtepi32_ps(d), sx, cx), ws[j], acc[i][j]);
      }
    }
  }
  for (int i = 0; i < T; ++i) {
    float out[8];
    for (int j = 0; j < 4; ++j) {
      alignas(64) float l[16];
      _mm512_store_ps(l, acc[i][j]);
      out[2 * j] = ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
      out[2 * j + 1] = ((l[8] + l[9]) + (l[10] + l[11])) + ((l[12] + l[13]) + (l[14] + l[15]));
    }
    store_group(a, g, t0 + i, out);
  }
}
}  // namespace

void q8x8_groups_avx512(const GroupArgs& a, int64_t g0, int64_t g1) {
  run_groups<4>(a, g0, g1, kQ8GroupBlockBytes, [&](auto tile, int64_t g, int64_t t, const char* end, bool prefetch) {
    q8_group_tokens<decltype(tile)::value>(a, g, t, end, prefetch);
  });
}

void q4x8_groups_avx512(const GroupArgs& a, int64_t g0, int64_t g1) {
  run_groups<8>(a, g0, g1, kQ4GroupBlockBytes, [&](auto tile, int64_t g, int64_t t, const char* end, bool prefetch) {
    q4_group_tokens<decltype(tile)::value>(a, g, t, end, prefetch);
  });
}

}  // namespace qforge::cpu_quant

#pragma GCC diagnostic pop
#pragma GCC pop_options
