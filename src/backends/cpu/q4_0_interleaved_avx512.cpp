// src/backends/cpu/q4_0_interleaved_avx512.cpp — AVX-512 VNNI decode kernel over the interleaved q4_0
// layout (q4_0_interleaved.h): per block of 32 columns, 8 rows' nibbles in two zmm (4 rows per zmm, one
// 128-bit lane per row), vpdpbusd against the activation halves broadcast to every lane, the 8 scales
// converted with one vcvtph2ps. Only called when best_isa() is Avx512; the target pragma covers only
// code below the includes.
#include <immintrin.h>

#include <cstdint>

#include "backends/cpu/q4_0_interleaved.h"

#pragma GCC push_options
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c")

namespace qforge::cpu_quant {
namespace {
// Software prefetch distance (bytes ahead of the block being read) into L2.
constexpr int64_t kPrefetch = 2048;

// The 4 rows of one zmm: sum of each 128-bit lane.
inline void lane_sums(__m512 v, float* out) {
  alignas(64) float t[16];
  _mm512_store_ps(t, v);
  for (int i = 0; i < 4; ++i) out[i] = (t[4 * i] + t[4 * i + 1]) + (t[4 * i + 2] + t[4 * i + 3]);
}
}  // namespace

void q4x8_groups_avx512(const Q4x8Args& a, int64_t g0, int64_t g1) {
  const int64_t nb = a.nb, group_bytes = nb * kQ4GroupBlockBytes;
  const __m512i perm0 = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
  const __m512i perm1 = _mm512_setr_epi32(4, 4, 4, 4, 5, 5, 5, 5, 6, 6, 6, 6, 7, 7, 7, 7);
  const __m512i m4 = _mm512_set1_epi8(15);
  const char* end = reinterpret_cast<const char*>(a.data + (g1 * group_bytes));
  for (int64_t g = g0; g < g1; ++g) {
    const uint8_t* grp = a.data + g * group_bytes;
    for (int64_t t = 0; t < a.n_tokens; ++t) {
      const int8_t* xq = a.xq + t * nb * 32;
      const float* dx = a.dx + t * nb;
      const float* ds = a.dsum + t * nb;
      __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
      for (int64_t b = 0; b < nb; ++b) {
        const uint8_t* blk = grp + b * kQ4GroupBlockBytes;
        if (t == 0) {
          const char* pf = reinterpret_cast<const char*>(blk) + kPrefetch;
          if (pf + 144 <= end) {
            _mm_prefetch(pf, _MM_HINT_T1);
            _mm_prefetch(pf + 64, _MM_HINT_T1);
            _mm_prefetch(pf + 128, _MM_HINT_T1);
          }
        }
        const __m512 dw8 = _mm512_castps256_ps512(
            _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk))));
        const __m512i xlo = _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(xq + b * 32)));
        const __m512i xhi =
            _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(xq + b * 32 + 16)));
        const __m512i q0 = _mm512_loadu_si512(blk + 16), q1 = _mm512_loadu_si512(blk + 80);
        __m512i d0 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_and_si512(q0, m4), xlo);
        __m512i d1 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_and_si512(q1, m4), xlo);
        d0 = _mm512_dpbusd_epi32(d0, _mm512_and_si512(_mm512_srli_epi16(q0, 4), m4), xhi);
        d1 = _mm512_dpbusd_epi32(d1, _mm512_and_si512(_mm512_srli_epi16(q1, 4), m4), xhi);
        // Per lane: d_w (d_x dot - 8 d_x sum(x_q) / 4), the offset spread over the row's 4 lanes.
        const __m512 sx = _mm512_set1_ps(dx[b]), cx = _mm512_set1_ps(2.0f * ds[b]);
        acc0 = _mm512_fmadd_ps(_mm512_fmsub_ps(_mm512_cvtepi32_ps(d0), sx, cx), _mm512_permutexvar_ps(perm0, dw8), acc0);
        acc1 = _mm512_fmadd_ps(_mm512_fmsub_ps(_mm512_cvtepi32_ps(d1), sx, cx), _mm512_permutexvar_ps(perm1, dw8), acc1);
      }
      float out[8];
      lane_sums(acc0, out);
      lane_sums(acc1, out + 4);
      float* y = a.y + t * a.rows;
      for (int i = 0; i < kQ4Interleave && g * kQ4Interleave + i < a.rows; ++i) y[g * kQ4Interleave + i] = out[i];
    }
  }
}

}  // namespace qforge::cpu_quant

#pragma GCC diagnostic pop
#pragma GCC pop_options
