// backends/cpu/linear_avx2.cpp — AVX2/FMA tiles for float-weight linear layers: weights are
// converted from f32/f16/bf16 in registers (never a converted copy in memory) and each loaded
// weight vector is reused for up to 4 tokens. One token (decode) streams one row at a time
// (row_stream): one memory stream per thread, which the hardware prefetcher serves best.
#include <immintrin.h>

#include "backends/cpu/cpu_kernels.h"

namespace qforge::cpu {
namespace {

template <DType WT>
inline __m256 load8(const void* w, int64_t i) {
  if constexpr (WT == DType::F32) {
    return _mm256_loadu_ps(static_cast<const float*>(w) + i);
  } else if constexpr (WT == DType::BF16) {
    __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(w) + i));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  } else {
    __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(w) + i));
    return _mm256_cvtph_ps(h);
  }
}

template <DType WT>
inline float load1(const void* w, int64_t i) {
  if constexpr (WT == DType::F32) return static_cast<const float*>(w)[i];
  else if constexpr (WT == DType::BF16) return bf16_to_f32(static_cast<const uint16_t*>(w)[i]);
  else return f16_to_f32(static_cast<const uint16_t*>(w)[i]);
}

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

template <DType WT>
const void* row_ptr(const void* w, int64_t r, int64_t in) {
  return static_cast<const char*>(w) + r * in * int64_t(dtype_size(WT));
}

// R rows x T tokens register tile.
template <DType WT, int R, int T>
inline void tile(const void* w, int64_t in, const float* x, float* y, int64_t y_stride) {
  __m256 acc[R][T];
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) acc[r][t] = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= in; i += 8) {
    __m256 xv[T];
    for (int t = 0; t < T; ++t) xv[t] = _mm256_loadu_ps(x + t * in + i);
    for (int r = 0; r < R; ++r) {
      __m256 wv = load8<WT>(w, r * in + i);
      for (int t = 0; t < T; ++t) acc[r][t] = _mm256_fmadd_ps(wv, xv[t], acc[r][t]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) {
      float s = hsum(acc[r][t]);
      for (int64_t j = i; j < in; ++j) s += load1<WT>(w, r * in + j) * x[t * in + j];
      y[t * y_stride + r] = s;
    }
}

// One token: each row is one sequential stream, 64 weights a step over 8 accumulators (added in a fixed
// order), the K tail scalar.
template <DType WT>
void row_stream(const void* w, int64_t nrows, int64_t in, const float* x, float* y) {
  for (int64_t r = 0; r < nrows; ++r) {
    const void* wr = row_ptr<WT>(w, r, in);
    __m256 a[8];
    for (int k = 0; k < 8; ++k) a[k] = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 64 <= in; i += 64)
      for (int k = 0; k < 8; ++k) a[k] = _mm256_fmadd_ps(load8<WT>(wr, i + 8 * k), _mm256_loadu_ps(x + i + 8 * k), a[k]);
    for (int k = 0; i + 8 <= in; i += 8, ++k) a[k] = _mm256_fmadd_ps(load8<WT>(wr, i), _mm256_loadu_ps(x + i), a[k]);
    for (int k = 0; k < 4; ++k) a[k] = _mm256_add_ps(a[k], a[k + 4]);
    float s = hsum(_mm256_add_ps(_mm256_add_ps(a[0], a[1]), _mm256_add_ps(a[2], a[3])));
    for (; i < in; ++i) s += load1<WT>(wr, i) * x[i];
    y[r] = s;
  }
}

template <DType WT>
void dot_tile_t(const void* w, int64_t nrows, int64_t in, const float* x, int64_t n_tok, float* y, int64_t ys) {
  if (n_tok == 1) {
    row_stream<WT>(w, nrows, in, x, y);
    return;
  }
  int64_t t = 0;
  if (n_tok >= 4) {
    for (; t + 4 <= n_tok; t += 4) {
      int64_t r = 0;
      for (; r + 2 <= nrows; r += 2) tile<WT, 2, 4>(row_ptr<WT>(w, r, in), in, x + t * in, y + t * ys + r, ys);
      for (; r < nrows; ++r) tile<WT, 1, 4>(row_ptr<WT>(w, r, in), in, x + t * in, y + t * ys + r, ys);
    }
  }
  for (; t < n_tok; ++t) {
    int64_t r = 0;
    for (; r + 4 <= nrows; r += 4) tile<WT, 4, 1>(row_ptr<WT>(w, r, in), in, x + t * in, y + t * ys + r, ys);
    for (; r < nrows; ++r) tile<WT, 1, 1>(row_ptr<WT>(w, r, in), in, x + t * in, y + t * ys + r, ys);
  }
}

}  // namespace

void dot_tile_avx2(const void* w, DType wt, int64_t nrows, int64_t in, const float* x, int64_t n_tok, float* y,
                   int64_t ys) {
  switch (wt) {
    case DType::F32: return dot_tile_t<DType::F32>(w, nrows, in, x, n_tok, y, ys);
    case DType::BF16: return dot_tile_t<DType::BF16>(w, nrows, in, x, n_tok, y, ys);
    default: return dot_tile_t<DType::F16>(w, nrows, in, x, n_tok, y, ys);
  }
}

float dot_f32_avx2(const float* a, const float* b, int64_t n) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
  }
  for (; i + 8 <= n; i += 8) acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
  float s = hsum(_mm256_add_ps(acc0, acc1));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

void axpy_f32_avx2(float a, const float* x, float* y, int64_t n) {
  __m256 av = _mm256_set1_ps(a);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  for (; i < n; ++i) y[i] += a * x[i];
}

}  // namespace qforge::cpu
