// src/backends/cpu/kquant_chunks.h — a K-quant super-block (Q2_K..Q6_K) read as 8 chunks of 32 value codes in
// AVX2 registers, with the scales and minimum codes of each chunk's two 16-weight halves: what the int8
// prefill kernels (kquant_amx.cpp, kquant_avx512.cpp, kquant_avx2.cpp) build their operands from. Include it only
// below a target pragma that enables AVX2 (the functions are inline and take that pragma's target).
#pragma once
#include <immintrin.h>

#include <cstring>
#include <string>
#include <vector>

#include "qforge/dtype.h"
#include "qforge/quant.h"
#include "qforge/status.h"
#include "quant/quant_codecs.h"

namespace qforge::cpu_quant {

inline __m256i kquant_load32(const uint8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
// Bits [shift, shift + width) of every byte (width given as its mask).
inline __m256i kquant_byte_bits(__m256i b, int shift, int mask) {
  return _mm256_and_si256(_mm256_srli_epi16(b, shift), _mm256_set1_epi8(char(mask)));
}

// How a format's codes relate to its values: value = scale x (code - offset) per half-block, scales shared by
// 32 weights (Q4_K, Q5_K) or 16, and whether a minimum term follows (the lane kernels' template choice).
struct KQuantForm { int sub, offset; bool min; };
inline KQuantForm kquant_form(QuantFormat f) {
  switch (f) {
    case QuantFormat::Q4_K: case QuantFormat::Q5_K: return {32, 0, true};
    case QuantFormat::Q6_K: return {16, 32, false};
    case QuantFormat::Q3_K: return {16, 4, false};
    default: return {16, 0, true};  // Q2_K
  }
}

// emit(i, v, sc0, sc1, m0, m1) for chunk i = 0..7 (elements 32 i .. 32 i + 31): v the 32 value codes as int8
// (offset applied: Q6_K code - 32, Q3_K -4..3), sc0 / sc1 the integer scales and m0 / m1 the minimum codes of its
// halves (0 without minimums). d and dmin: the super-block's f32 scale and minimum scale (0 without).
template <class Emit>
inline void kquant_chunks(QuantFormat f, const uint8_t* blk, float& d, float& dmin, Emit&& emit) {
  using namespace quant_detail;
  dmin = 0.0f;
  switch (f) {
    case QuantFormat::Q4_K: case QuantFormat::Q5_K: {
      const bool q5 = f == QuantFormat::Q5_K;
      const auto& b4 = *reinterpret_cast<const BlockQ4_K*>(blk);
      const auto& b5 = *reinterpret_cast<const BlockQ5_K*>(blk);
      d = f16_to_f32(q5 ? b5.d : b4.d);
      dmin = f16_to_f32(q5 ? b5.dmin : b4.dmin);
      const uint8_t* qs = q5 ? b5.qs : b4.qs;
      const __m256i qh = q5 ? kquant_load32(b5.qh) : _mm256_setzero_si256();
      for (int i = 0; i < 8; ++i) {
        uint8_t sc, mn;
        q4_k_scale_min(i, q5 ? b5.scales : b4.scales, sc, mn);
        __m256i v = kquant_byte_bits(kquant_load32(qs + 32 * (i / 2)), 4 * (i & 1), 15);
        if (q5) v = _mm256_or_si256(v, _mm256_slli_epi16(kquant_byte_bits(qh, i, 1), 4));
        emit(i, v, int(sc), int(sc), int(mn), int(mn));
      }
      return;
    }
    case QuantFormat::Q6_K: {
      const auto& b = *reinterpret_cast<const BlockQ6_K*>(blk);
      d = f16_to_f32(b.d);
      for (int i = 0; i < 8; ++i) {
        const int half = i / 4, quarter = i % 4;
        const __m256i low = kquant_byte_bits(kquant_load32(b.ql + 64 * half + 32 * (quarter & 1)), quarter < 2 ? 0 : 4, 15);
        const __m256i h = kquant_byte_bits(kquant_load32(b.qh + 32 * half), 2 * quarter, 3);
        const __m256i v = _mm256_sub_epi8(_mm256_or_si256(low, _mm256_slli_epi16(h, 4)), _mm256_set1_epi8(32));
        emit(i, v, int(b.scales[2 * i]), int(b.scales[2 * i + 1]), 0, 0);
      }
      return;
    }
    case QuantFormat::Q3_K: {
      const auto& b = *reinterpret_cast<const BlockQ3_K*>(blk);
      d = f16_to_f32(b.d);
      const __m256i hm = kquant_load32(b.hmask);
      for (int i = 0; i < 8; ++i) {
        const __m256i low = kquant_byte_bits(kquant_load32(b.qs + 32 * (i / 4)), 2 * (i % 4), 3);
        const __m256i v = _mm256_sub_epi8(_mm256_or_si256(low, _mm256_slli_epi16(kquant_byte_bits(hm, i, 1), 2)),
                                          _mm256_set1_epi8(4));
        emit(i, v, q3_k_scale(b.scales, 2 * i), q3_k_scale(b.scales, 2 * i + 1), 0, 0);
      }
      return;
    }
    case QuantFormat::Q2_K: {
      const auto& b = *reinterpret_cast<const BlockQ2_K*>(blk);
      d = f16_to_f32(b.d);
      dmin = f16_to_f32(b.dmin);
      for (int i = 0; i < 8; ++i) {
        const __m256i v = kquant_byte_bits(kquant_load32(b.qs + 32 * (i / 4)), 2 * (i % 4), 3);
        const uint8_t s0 = b.scales[2 * i], s1 = b.scales[2 * i + 1];
        emit(i, v, s0 & 15, s1 & 15, s0 >> 4, s1 >> 4);
      }
      return;
    }
    default: throw Error("kquant prefill: " + std::string(quant_traits(f).name) + " is not a K-quant format");
  }
}

// The lane kernels' rows of one super-block: for rows r0 .. r0 + L - 1 of w (zeros past the last row), the 256
// unsigned codes (value code + the form's offset), the 16 half-block scales and minimum codes, and d / dmin at
// d[r * d_stride] (dmin likewise).
template <int L>
inline void kquant_lane_rows(const QuantWeight& w, int64_t r0, int64_t sb, const KQuantForm& form, uint8_t (&c)[L][256],
                             int16_t (&sc)[L][16], int16_t (&m)[L][16], float* d, float* dmin, int64_t d_stride) {
  const int64_t nsb = w.cols / 256, row_bytes = int64_t(w.data.nbytes()) / w.rows, sb_bytes = row_bytes / nsb;
  const __m256i offset = _mm256_set1_epi8(char(form.offset));
  for (int r = 0; r < L; ++r) {
    if (r0 + r >= w.rows) {
      std::memset(c[r], 0, sizeof c[r]);
      std::memset(sc[r], 0, sizeof sc[r]);
      std::memset(m[r], 0, sizeof m[r]);
      continue;
    }
    const uint8_t* blk = static_cast<const uint8_t*>(w.data.raw()) + (r0 + r) * row_bytes + sb * sb_bytes;
    kquant_chunks(w.format, blk, d[r * d_stride], dmin[r * d_stride], [&](int i, __m256i v, int sc0, int sc1, int m0, int m1) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(c[r] + 32 * i), _mm256_add_epi8(v, offset));
      sc[r][2 * i] = int16_t(sc0);
      sc[r][2 * i + 1] = int16_t(sc1);
      m[r][2 * i] = int16_t(m0);
      m[r][2 * i + 1] = int16_t(m1);
    });
  }
}

// L rows in a lane kernel's form, per super-block: codes [64][L] dwords (4 consecutive unsigned codes of a row),
// scales [16][L] (half-block j of each row; AVX2 holds it in both int16 halves), scale and minimum pairs [8][L]
// (int16 pairs of half-blocks 2j, 2j + 1), d / dmin [L]. Rows past the weight are zero.
struct KQuantLaneGroup {
  std::vector<int32_t> codes, scales, scale_pairs, min_pairs;
  std::vector<float> d, dmin;
  void resize(int64_t nsb, int lanes) {
    codes.resize(size_t(nsb * 64 * lanes));
    scales.resize(size_t(nsb * 16 * lanes));
    scale_pairs.resize(size_t(nsb * 8 * lanes));
    min_pairs.resize(size_t(nsb * 8 * lanes));
    d.assign(size_t(nsb * lanes), 0.0f);
    dmin.assign(size_t(nsb * lanes), 0.0f);
  }
};

}  // namespace qforge::cpu_quant
