// src/backends/cpu/quant_linear_avx2.cpp — AVX2/FMA inner kernel of quant_linear_cpu: one dequantized weight
// tile dotted with several tokens (compiled with -mavx2 -mfma; only called when the CPU has both).
#include <immintrin.h>

#include "backends/quant_linear.h"

namespace qforge::cpu_detail {

namespace {
inline float hsum(__m256 v) {
  __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
  lo = _mm_add_ps(lo, hi);
  lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
  lo = _mm_add_ss(lo, _mm_shuffle_ps(lo, lo, 1));
  return _mm_cvtss_f32(lo);
}
}  // namespace

void dot_tokens_avx2(const float* w, const float* x, int64_t ldx, int64_t n_tokens, int64_t len, float* acc) {
  const int64_t len8 = len & ~int64_t(7);
  int64_t t = 0;
  for (; t + 4 <= n_tokens; t += 4) {  // four tokens share each weight load
    const float* x0 = x + t * ldx;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t k = 0; k < len8; k += 8) {
      const __m256 wv = _mm256_loadu_ps(w + k);
      a0 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x0 + k), a0);
      a1 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x0 + ldx + k), a1);
      a2 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x0 + 2 * ldx + k), a2);
      a3 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x0 + 3 * ldx + k), a3);
    }
    float s0 = hsum(a0), s1 = hsum(a1), s2 = hsum(a2), s3 = hsum(a3);
    for (int64_t k = len8; k < len; ++k) {
      s0 += w[k] * x0[k];
      s1 += w[k] * x0[ldx + k];
      s2 += w[k] * x0[2 * ldx + k];
      s3 += w[k] * x0[3 * ldx + k];
    }
    acc[t] += s0; acc[t + 1] += s1; acc[t + 2] += s2; acc[t + 3] += s3;
  }
  for (; t < n_tokens; ++t) {
    const float* xt = x + t * ldx;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0;
    int64_t k = 0;
    for (; k + 16 <= len8; k += 16) {
      a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + k), _mm256_loadu_ps(xt + k), a0);
      a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w + k + 8), _mm256_loadu_ps(xt + k + 8), a1);
    }
    for (; k < len8; k += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + k), _mm256_loadu_ps(xt + k), a0);
    float s = hsum(_mm256_add_ps(a0, a1));
    for (; k < len; ++k) s += w[k] * xt[k];
    acc[t] += s;
  }
}

}  // namespace qforge::cpu_detail
