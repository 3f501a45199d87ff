// backends/cpu/linear_avx512.cpp — AVX-512 tiles for float-weight linear layers (f32/f16/bf16 weights,
// f32 activations and accumulation): a 4-row x 4-token register tile of zmm accumulators, weights
// converted in registers 16 at a time (never a converted copy in memory) and each loaded weight vector
// reused for 4 tokens; the K tail with masked loads. One token (decode) streams one row at a time instead
// (row_stream): several rows read side by side are several memory streams, which the hardware
// prefetcher serves worse than one (docs/perf-notes.md). Only called when cpu_has_avx512(); the target
// pragma covers only code below the includes.
#include <immintrin.h>

#include "backends/cpu/cpu_kernels.h"

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")

namespace qforge::cpu {
namespace {

// 16 weights from element i (the first `n` of them when a mask is given; the rest read as 0).
template <DType WT>
inline __m512 load16(const void* w, int64_t i, __mmask16 m) {
  if constexpr (WT == DType::F32) {
    return _mm512_maskz_loadu_ps(m, static_cast<const float*>(w) + i);
  } else {
    const __m256i h = _mm256_maskz_loadu_epi16(m, static_cast<const uint16_t*>(w) + i);
    // maskz forms with a full mask: GCC 12 warns (falsely) on the unmasked ones' undefined source operand.
    const __mmask16 all = 0xFFFF;
    if constexpr (WT == DType::BF16)
      return _mm512_castsi512_ps(_mm512_maskz_slli_epi32(all, _mm512_maskz_cvtepu16_epi32(all, h), 16));
    else return _mm512_maskz_cvtph_ps(all, h);
  }
}

// Sum of the 16 lanes in a fixed order (the results do not depend on the compiler's reduction).
inline float hsum(__m512 v) {
  alignas(64) float l[16];
  _mm512_store_ps(l, v);
  float s[4];
  for (int i = 0; i < 4; ++i) s[i] = (l[i] + l[i + 4]) + (l[i + 8] + l[i + 12]);
  return (s[0] + s[1]) + (s[2] + s[3]);
}

template <DType WT>
const void* row_ptr(const void* w, int64_t r, int64_t in) {
  return static_cast<const char*>(w) + r * in * int64_t(dtype_size(WT));
}

// R rows x T tokens: y[t * ys + r] = sum_i w[r * in + i] x[t * in + i].
template <DType WT, int R, int T>
inline void tile(const void* w, int64_t in, const float* x, float* y, int64_t ys) {
  __m512 acc[R][T];
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) acc[r][t] = _mm512_setzero_ps();
  auto step = [&](int64_t i, __mmask16 m) {
    __m512 xv[T];
    for (int t = 0; t < T; ++t) xv[t] = _mm512_maskz_loadu_ps(m, x + t * in + i);
    for (int r = 0; r < R; ++r) {
      const __m512 wv = load16<WT>(w, r * in + i, m);
      for (int t = 0; t < T; ++t) acc[r][t] = _mm512_fmadd_ps(wv, xv[t], acc[r][t]);
    }
  };
  int64_t i = 0;
  for (; i + 16 <= in; i += 16) step(i, __mmask16(0xFFFF));
  if (i < in) step(i, __mmask16((1u << (in - i)) - 1));
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) y[t * ys + r] = hsum(acc[r][t]);
}

// One token: each row is one sequential stream, 64 weights a step over 4 accumulators (16 lanes each,
// added in a fixed order), the K tail with masked loads.
template <DType WT>
void row_stream(const void* w, int64_t nrows, int64_t in, const float* x, float* y) {
  const __mmask16 all = 0xFFFF;
  for (int64_t r = 0; r < nrows; ++r) {
    const void* wr = row_ptr<WT>(w, r, in);
    __m512 a[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    int64_t i = 0;
    for (; i + 64 <= in; i += 64)
      for (int k = 0; k < 4; ++k)
        a[k] = _mm512_fmadd_ps(load16<WT>(wr, i + 16 * k, all), _mm512_loadu_ps(x + i + 16 * k), a[k]);
    for (int k = 0; i < in; i += 16, ++k) {  // fewer than 64 left: k < 4
      const __mmask16 m = in - i >= 16 ? all : __mmask16((1u << (in - i)) - 1);
      a[k] = _mm512_fmadd_ps(load16<WT>(wr, i, m), _mm512_maskz_loadu_ps(m, x + i), a[k]);
    }
    y[r] = hsum(_mm512_add_ps(_mm512_add_ps(a[0], a[1]), _mm512_add_ps(a[2], a[3])));
  }
}

template <DType WT, int T>
void rows_for_tokens(const void* w, int64_t nrows, int64_t in, const float* x, float* y, int64_t ys) {
  int64_t r = 0;
  for (; r + 4 <= nrows; r += 4) tile<WT, 4, T>(row_ptr<WT>(w, r, in), in, x, y + r, ys);
  for (; r < nrows; ++r) tile<WT, 1, T>(row_ptr<WT>(w, r, in), in, x, y + r, ys);
}

template <DType WT>
void dot_tile_t(const void* w, int64_t nrows, int64_t in, const float* x, int64_t n_tok, float* y, int64_t ys) {
  int64_t t = 0;
  for (; t + 4 <= n_tok; t += 4) rows_for_tokens<WT, 4>(w, nrows, in, x + t * in, y + t * ys, ys);
  switch (n_tok - t) {
    case 3: rows_for_tokens<WT, 3>(w, nrows, in, x + t * in, y + t * ys, ys); break;
    case 2: rows_for_tokens<WT, 2>(w, nrows, in, x + t * in, y + t * ys, ys); break;
    case 1: row_stream<WT>(w, nrows, in, x + t * in, y + t * ys); break;  // one token: one stream a row
    default: break;
  }
}

}  // namespace

void dot_tile_avx512(const void* w, DType wt, int64_t nrows, int64_t in, const float* x, int64_t n_tok, float* y,
                     int64_t ys) {
  switch (wt) {
    case DType::F32: return dot_tile_t<DType::F32>(w, nrows, in, x, n_tok, y, ys);
    case DType::BF16: return dot_tile_t<DType::BF16>(w, nrows, in, x, n_tok, y, ys);
    default: return dot_tile_t<DType::F16>(w, nrows, in, x, n_tok, y, ys);
  }
}

}  // namespace qforge::cpu

#pragma GCC pop_options
