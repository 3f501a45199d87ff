// src/quant/gguf.cpp — GGUF Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K and Q6_K blocks, bit-identical to
// llama.cpp's reference quantizers (quantize_row_{q4_0,q4_1,q5_0,q5_1,q8_0}_ref, quantize_row_{q2_K,q4_K,q5_K}_ref
// with make_qkx2_quants, quantize_row_q3_K_ref with make_q3_quants, quantize_row_q6_K_ref with make_qx_quants)
// and their dequantizers. Rows must be whole blocks (K % 32,
// K % 256 for the K-quants), as llama.cpp requires.
// Buffers: data U8 [N, K/QK * sizeof(block)], blocks in row order; no separate scale tensors.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "core/thread_pool.h"
#include "qforge/status.h"
#include "quant/quant_codecs.h"
#include "quant/quant_formats.h"

namespace qforge::quant_detail {

namespace {
// llama.cpp nearest_int: round half to even via the 1.5*2^23 trick (valid for |v| <= 4194303).
inline int nearest_int(float v) {
  const float t = v + 12582912.0f;
  int32_t i;
  std::memcpy(&i, &t, 4);
  return (i & 0x007fffff) - 0x00400000;
}

float make_qkx2_quants(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* the_min,
                       uint8_t* Laux, float rmin, float rdelta, int nstep, bool use_mad = false) {
  float min = x[0], max = x[0];
  float sum_w = weights[0], sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    const float w = weights[i];
    sum_w += w;
    sum_x += w * x[i];
  }
  if (min > 0) min = 0;
  if (max == min) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    *the_min = -min;
    return 0.0f;
  }
  float iscale = float(nmax) / (max - min);
  float scale = 1 / iscale;
  float best = 0;
  for (int i = 0; i < n; ++i) {
    const int l = nearest_int(iscale * (x[i] - min));
    L[i] = uint8_t(std::max(0, std::min(nmax, l)));
    float diff = scale * L[i] + min - x[i];
    diff = use_mad ? std::fabs(diff) : diff * diff;
    best += weights[i] * diff;
  }
  for (int is = 0; is <= nstep; ++is) {
    iscale = (rmin + rdelta * float(is) + float(nmax)) / (max - min);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      int l = nearest_int(iscale * (x[i] - min));
      l = std::max(0, std::min(nmax, l));
      Laux[i] = uint8_t(l);
      const float w = weights[i];
      sum_l += w * float(l);
      sum_l2 += w * float(l) * float(l);
      sum_xl += w * float(l) * x[i];
    }
    const float D = sum_w * sum_l2 - sum_l * sum_l;
    if (D > 0) {
      float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
      float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
      if (this_min > 0) {
        this_min = 0;
        this_scale = sum_xl / sum_l2;
      }
      float mad = 0;
      for (int i = 0; i < n; ++i) {
        float diff = this_scale * Laux[i] + this_min - x[i];
        diff = use_mad ? std::fabs(diff) : diff * diff;
        mad += weights[i] * diff;
      }
      if (mad < best) {
        for (int i = 0; i < n; ++i) L[i] = Laux[i];
        best = mad;
        scale = this_scale;
        min = this_min;
      }
    }
  }
  *the_min = -min;
  return scale;
}

// The value of x[0..n) with the largest magnitude, sign kept (the first of equals), and that magnitude.
float signed_absmax(const float* x, int n, float& amax) {
  float max = 0;
  amax = 0;
  for (int i = 0; i < n; ++i) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) {
      amax = ax;
      max = x[i];
    }
  }
  return max;
}

// make_qx_quants (rmse_type 1, no importance weights): signed codes L in [0, 2 nmax) for n values,
// scale searched over 19 candidates around -nmax / max, weighted by x^2.
float make_qx_quants(int n, int nmax, const float* x, int8_t* L) {
  float amax;
  const float max = signed_absmax(x, n, amax);
  if (amax < 1e-15f) {  // GROUP_MAX_EPS
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.f;
  }
  auto code = [&](float iscale, int i) { return std::max(-nmax, std::min(nmax - 1, nearest_int(iscale * x[i]))); };
  float iscale = float(-nmax) / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    const int l = code(iscale, i);
    L[i] = int8_t(l + nmax);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * float(l);
    suml2 += w * float(l) * float(l);
  }
  float scale = suml2 ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    iscale = -(float(nmax) + 0.1f * float(is)) / max;
    sumlx = suml2 = 0;
    for (int i = 0; i < n; ++i) {
      const int l = code(iscale, i);
      const float w = x[i] * x[i];
      sumlx += w * x[i] * float(l);
      suml2 += w * float(l) * float(l);
    }
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; ++i) L[i] = int8_t(nmax + code(iscale, i));
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

// make_q3_quants (do_rmse): signed codes in [-nmax, nmax) then + nmax, the scale refined by up to 5 passes
// that move single codes while the weighted fit improves (weights x^2).
float make_q3_quants(int n, int nmax, const float* x, int8_t* L) {
  float amax;
  const float max = signed_absmax(x, n, amax);
  if (amax < 1e-15f) {  // GROUP_MAX_EPS
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.f;
  }
  const float iscale = float(-nmax) / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    const int l = std::max(-nmax, std::min(nmax - 1, nearest_int(iscale * x[i])));
    L[i] = int8_t(l);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * float(l);
    suml2 += w * float(l) * float(l);
  }
  for (int itry = 0; itry < 5; ++itry) {
    int n_changed = 0;
    for (int i = 0; i < n; ++i) {
      const float w = x[i] * x[i];
      float slx = sumlx - w * x[i] * float(L[i]);
      if (slx > 0) {
        float sl2 = suml2 - w * float(L[i]) * float(L[i]);
        const int new_l = std::max(-nmax, std::min(nmax - 1, nearest_int(x[i] * sl2 / slx)));
        if (new_l != L[i]) {
          slx += w * x[i] * float(new_l);
          sl2 += w * float(new_l) * float(new_l);
          if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
            L[i] = int8_t(new_l);
            sumlx = slx;
            suml2 = sl2;
            ++n_changed;
          }
        }
      }
    }
    if (!n_changed) break;
  }
  for (int i = 0; i < n; ++i) L[i] = int8_t(L[i] + nmax);
  return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

// Q2_K / Q3_K: 2-bit codes of four 32-weight quarters of each 128-weight half share a byte (bits 2 j4).
void pack_low2(const uint8_t* L, uint8_t* qs) {
  for (int j = 0; j < 256; j += 128)
    for (int l = 0; l < 32; ++l)
      qs[j / 4 + l] = uint8_t(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
}

struct GgufLayout { int qk; size_t bytes; };
GgufLayout layout_of(QuantFormat f) {
  switch (f) {
    case QuantFormat::Q4_0: return {32, sizeof(BlockQ4_0)};
    case QuantFormat::Q8_0: return {32, sizeof(BlockQ8_0)};
    case QuantFormat::Q5_0: return {32, sizeof(BlockQ5_0)};
    case QuantFormat::Q6_K: return {256, sizeof(BlockQ6_K)};
    case QuantFormat::Q4_1: return {32, sizeof(BlockQ4_1)};
    case QuantFormat::Q5_1: return {32, sizeof(BlockQ5_1)};
    case QuantFormat::Q5_K: return {256, sizeof(BlockQ5_K)};
    case QuantFormat::Q2_K: return {256, sizeof(BlockQ2_K)};
    case QuantFormat::Q3_K: return {256, sizeof(BlockQ3_K)};
    default: return {256, sizeof(BlockQ4_K)};
  }
}
}  // namespace

void quantize_block_q4_0(const float* x, BlockQ4_0& b) {
  float amax = 0.0f, max = 0.0f;
  for (int j = 0; j < 32; ++j)
    if (amax < std::fabs(x[j])) { amax = std::fabs(x[j]); max = x[j]; }
  const float d = max / -8;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  b.d = f32_to_f16(d);
  for (int j = 0; j < 16; ++j) {
    const float x0 = x[j] * id, x1 = x[16 + j] * id;
    const uint8_t q0 = uint8_t(std::min<int>(15, int8_t(x0 + 8.5f)));
    const uint8_t q1 = uint8_t(std::min<int>(15, int8_t(x1 + 8.5f)));
    b.qs[j] = uint8_t(q0 | (q1 << 4));
  }
}

void quantize_block_q8_0(const float* x, BlockQ8_0& b) {
  float amax = 0.0f;
  for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float d = amax / 127;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  b.d = f32_to_f16(d);
  for (int j = 0; j < 32; ++j) b.qs[j] = int8_t(std::round(x[j] * id));
}

namespace {
// The scale / minimum search shared by Q4_K and Q5_K (quantize_row_q{4,5}_K_ref): 8 sub-blocks of 32 with
// make_qkx2_quants (weights av_x + |x|), 6-bit scales and minimums packed as get_scale_min_k4 reads them,
// then the codes (0..nmax) requantized with the stored values into L.
void kquant_scales_mins(const float* x, int nmax, float rmin, int nstep, uint16_t& d16, uint16_t& dmin16,
                        uint8_t* scales12, uint8_t* L) {
  uint8_t Laux[32];
  float weights[32], mins[8], scales[8];
  float max_scale = 0, max_min = 0;
  for (int j = 0; j < 8; ++j) {
    float sum_x2 = 0;
    for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
    const float av_x = std::sqrt(sum_x2 / 32);
    for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(x[32 * j + l]);
    scales[j] = make_qkx2_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, rmin, 0.1f, nstep);
    if (scales[j] > max_scale) max_scale = scales[j];
    if (mins[j] > max_min) max_min = mins[j];
  }
  const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
  const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
  std::memset(scales12, 0, 12);
  for (int j = 0; j < 8; ++j) {
    uint8_t ls = uint8_t(nearest_int(inv_scale * scales[j]));
    uint8_t lm = uint8_t(nearest_int(inv_min * mins[j]));
    ls = std::min<uint8_t>(63, ls);
    lm = std::min<uint8_t>(63, lm);
    if (j < 4) {
      scales12[j] = ls;
      scales12[j + 4] = lm;
    } else {
      scales12[j + 4] = uint8_t((ls & 0xF) | ((lm & 0xF) << 4));
      scales12[j - 4] |= uint8_t((ls >> 4) << 6);
      scales12[j - 0] |= uint8_t((lm >> 4) << 6);
    }
  }
  d16 = f32_to_f16(max_scale / 63.f);
  dmin16 = f32_to_f16(max_min / 63.f);
  for (int j = 0; j < 8; ++j) {
    uint8_t sc, m;
    q4_k_scale_min(j, scales12, sc, m);
    const float d = f16_to_f32(d16) * sc;
    if (!d) continue;
    const float dm = f16_to_f32(dmin16) * m;
    for (int ii = 0; ii < 32; ++ii) {
      const int l = nearest_int((x[32 * j + ii] + dm) / d);
      L[32 * j + ii] = uint8_t(std::max(0, std::min(nmax, l)));
    }
  }
}
}  // namespace

void quantize_block_q4_k(const float* x, BlockQ4_K& y) {
  uint8_t L[256];
  kquant_scales_mins(x, 15, -1.f, 20, y.d, y.dmin, y.scales, L);
  uint8_t* q = y.qs;
  for (int j = 0; j < 256; j += 64) {
    for (int l = 0; l < 32; ++l) q[l] = uint8_t(L[j + l] | (L[j + l + 32] << 4));
    q += 32;
  }
}

void quantize_block_q5_k(const float* x, BlockQ5_K& y) {
  uint8_t L[256];
  kquant_scales_mins(x, 31, -0.5f, 15, y.d, y.dmin, y.scales, L);
  std::memset(y.qh, 0, sizeof(y.qh));
  for (int g = 0; g < 4; ++g)
    for (int l = 0; l < 32; ++l) {
      const int l1 = L[64 * g + l], l2 = L[64 * g + l + 32];
      y.qs[32 * g + l] = uint8_t((l1 & 15) | (l2 & 15) << 4);
      y.qh[l] |= uint8_t((l1 >> 4) << (2 * g) | (l2 >> 4) << (2 * g + 1));
    }
}

namespace {
void min_max32(const float* x, float& min, float& max) {  // as llama.cpp's q4_1 / q5_1 scans (from FLT_MAX / -FLT_MAX)
  min = x[0];
  max = x[0];
  for (int j = 1; j < 32; ++j) {
    min = std::min(min, x[j]);
    max = std::max(max, x[j]);
  }
}
}  // namespace

void quantize_block_q4_1(const float* x, BlockQ4_1& b) {
  float min, max;
  min_max32(x, min, max);
  const float d = (max - min) / 15;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  b.d = f32_to_f16(d);
  b.m = f32_to_f16(min);
  for (int j = 0; j < 16; ++j) {
    const uint8_t q0 = uint8_t(std::min<int>(15, int8_t((x[j] - min) * id + 0.5f)));
    const uint8_t q1 = uint8_t(std::min<int>(15, int8_t((x[16 + j] - min) * id + 0.5f)));
    b.qs[j] = uint8_t(q0 | (q1 << 4));
  }
}

void quantize_block_q5_1(const float* x, BlockQ5_1& b) {
  float min, max;
  min_max32(x, min, max);
  const float d = (max - min) / 31;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  b.d = f32_to_f16(d);
  b.m = f32_to_f16(min);
  uint32_t qh = 0;
  for (int j = 0; j < 16; ++j) {
    const uint8_t q0 = uint8_t((x[j] - min) * id + 0.5f), q1 = uint8_t((x[16 + j] - min) * id + 0.5f);
    b.qs[j] = uint8_t((q0 & 15) | ((q1 & 15) << 4));
    qh |= uint32_t((q0 >> 4) & 1) << j | uint32_t((q1 >> 4) & 1) << (j + 16);
  }
  for (int i = 0; i < 4; ++i) b.qh[i] = uint8_t(qh >> (8 * i));
}

void quantize_block_q5_0(const float* x, BlockQ5_0& b) {
  float amax = 0.0f, max = 0.0f;
  for (int j = 0; j < 32; ++j)
    if (amax < std::fabs(x[j])) { amax = std::fabs(x[j]); max = x[j]; }
  const float d = max / -16;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  b.d = f32_to_f16(d);
  uint32_t qh = 0;
  for (int j = 0; j < 16; ++j) {
    const float x0 = x[j] * id, x1 = x[16 + j] * id;
    const uint8_t q0 = uint8_t(std::min<int>(31, int8_t(x0 + 16.5f)));
    const uint8_t q1 = uint8_t(std::min<int>(31, int8_t(x1 + 16.5f)));
    b.qs[j] = uint8_t((q0 & 15) | ((q1 & 15) << 4));
    qh |= uint32_t(q0 >> 4) << j | uint32_t(q1 >> 4) << (j + 16);
  }
  for (int i = 0; i < 4; ++i) b.qh[i] = uint8_t(qh >> (8 * i));
}

void quantize_block_q6_k(const float* x, BlockQ6_K& y) {
  int8_t L[256];
  float scales[16];
  float max_scale = 0, max_abs_scale = 0;
  for (int ib = 0; ib < 16; ++ib) {
    const float scale = make_qx_quants(16, 32, x + 16 * ib, L + 16 * ib);
    scales[ib] = scale;
    if (std::fabs(scale) > max_abs_scale) {
      max_abs_scale = std::fabs(scale);
      max_scale = scale;
    }
  }
  if (max_abs_scale < 1e-15f) {  // GROUP_MAX_EPS: an all-zero super-block
    std::memset(&y, 0, sizeof(y));
    return;
  }
  const float iscale = -128.f / max_scale;
  y.d = f32_to_f16(1 / iscale);
  for (int ib = 0; ib < 16; ++ib) y.scales[ib] = int8_t(std::min(127, nearest_int(iscale * scales[ib])));
  for (int j = 0; j < 16; ++j) {
    const float d = f16_to_f32(y.d) * float(y.scales[j]);
    if (!d) continue;
    for (int ii = 0; ii < 16; ++ii)
      L[16 * j + ii] = int8_t(std::max(-32, std::min(31, nearest_int(x[16 * j + ii] / d))) + 32);
  }
  for (int h = 0; h < 2; ++h) {
    const int8_t* Lh = L + 128 * h;
    for (int l = 0; l < 32; ++l) {
      y.ql[64 * h + l] = uint8_t((Lh[l] & 15) | (Lh[l + 64] & 15) << 4);
      y.ql[64 * h + l + 32] = uint8_t((Lh[l + 32] & 15) | (Lh[l + 96] & 15) << 4);
      y.qh[32 * h + l] = uint8_t(Lh[l] >> 4 | (Lh[l + 32] >> 4) << 2 | (Lh[l + 64] >> 4) << 4 | (Lh[l + 96] >> 4) << 6);
    }
  }
}

void dequantize_block_q4_0(const BlockQ4_0& b, float* y) {
  const float d = f16_to_f32(b.d);
  for (int j = 0; j < 16; ++j) {
    y[j] = float((b.qs[j] & 15) - 8) * d;
    y[j + 16] = float((b.qs[j] >> 4) - 8) * d;
  }
}

void dequantize_block_q8_0(const BlockQ8_0& b, float* y) {
  const float d = f16_to_f32(b.d);
  for (int j = 0; j < 32; ++j) y[j] = float(b.qs[j]) * d;
}

void dequantize_block_q4_k(const BlockQ4_K& b, float* y) {
  const float d = f16_to_f32(b.d), min = f16_to_f32(b.dmin);
  const uint8_t* q = b.qs;
  for (int j = 0, is = 0; j < 256; j += 64, is += 2, q += 32) {
    uint8_t sc, m;
    q4_k_scale_min(is, b.scales, sc, m);
    const float d1 = d * sc, m1 = min * m;
    q4_k_scale_min(is + 1, b.scales, sc, m);
    const float d2 = d * sc, m2 = min * m;
    for (int l = 0; l < 32; ++l) *y++ = d1 * float(q[l] & 0xF) - m1;
    for (int l = 0; l < 32; ++l) *y++ = d2 * float(q[l] >> 4) - m2;
  }
}

void dequantize_block_q5_0(const BlockQ5_0& b, float* y) {
  const float d = f16_to_f32(b.d);
  for (int j = 0; j < 32; ++j) y[j] = float(q5_0_code(b, j) - 16) * d;
}

void dequantize_block_q6_k(const BlockQ6_K& b, float* y) {
  const float d = f16_to_f32(b.d);
  for (int j = 0; j < 256; ++j) y[j] = d * float(b.scales[j / 16]) * float(q6_k_code(b, j) - 32);
}

void quantize_block_q2_k(const float* x, BlockQ2_K& y) {
  uint8_t L[256], Laux[16];
  float weights[16], mins[16], scales[16];
  float max_scale = 0, max_min = 0;
  for (int j = 0; j < 16; ++j) {
    for (int l = 0; l < 16; ++l) weights[l] = std::fabs(x[16 * j + l]);
    scales[j] = make_qkx2_quants(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], Laux, -0.5f, 0.1f, 15, true);
    max_scale = std::max(max_scale, scales[j]);
    max_min = std::max(max_min, mins[j]);
  }
  if (max_scale > 0) {
    const float iscale = 15.f / max_scale;
    for (int j = 0; j < 16; ++j) y.scales[j] = uint8_t(nearest_int(iscale * scales[j]));
    y.d = f32_to_f16(max_scale / 15.f);
  } else {
    for (int j = 0; j < 16; ++j) y.scales[j] = 0;
    y.d = f32_to_f16(0.f);
  }
  if (max_min > 0) {
    const float iscale = 15.f / max_min;
    for (int j = 0; j < 16; ++j) y.scales[j] = uint8_t(y.scales[j] | (nearest_int(iscale * mins[j]) << 4));
    y.dmin = f32_to_f16(max_min / 15.f);
  } else {
    y.dmin = f32_to_f16(0.f);
  }
  for (int j = 0; j < 16; ++j) {
    const float d = f16_to_f32(y.d) * float(y.scales[j] & 0xF);
    if (!d) continue;
    const float dm = f16_to_f32(y.dmin) * float(y.scales[j] >> 4);
    for (int ii = 0; ii < 16; ++ii)
      L[16 * j + ii] = uint8_t(std::max(0, std::min(3, nearest_int((x[16 * j + ii] + dm) / d))));
  }
  pack_low2(L, y.qs);
}

void quantize_block_q3_k(const float* x, BlockQ3_K& y) {
  int8_t L[256];
  float scales[16];
  float max_scale = 0, amax = 0;
  for (int j = 0; j < 16; ++j) {
    scales[j] = make_q3_quants(16, 4, x + 16 * j, L + 16 * j);
    if (std::fabs(scales[j]) > amax) {
      amax = std::fabs(scales[j]);
      max_scale = scales[j];
    }
  }
  std::memset(y.scales, 0, 12);
  if (max_scale) {
    const float iscale = -32.f / max_scale;
    for (int j = 0; j < 16; ++j) {
      int8_t l = int8_t(nearest_int(iscale * scales[j]));
      l = int8_t(std::max<int>(-32, std::min<int>(31, l)) + 32);
      if (j < 8) y.scales[j] = uint8_t(l & 0xF);
      else y.scales[j - 8] = uint8_t(y.scales[j - 8] | ((l & 0xF) << 4));
      l = int8_t(l >> 4);
      y.scales[j % 4 + 8] = uint8_t(y.scales[j % 4 + 8] | (l << (2 * (j / 4))));
    }
    y.d = f32_to_f16(1 / iscale);
  } else {
    y.d = f32_to_f16(0.f);
  }
  for (int j = 0; j < 16; ++j) {
    const float d = f16_to_f32(y.d) * float(q3_k_scale(y.scales, j));
    if (!d) continue;
    for (int ii = 0; ii < 16; ++ii)
      L[16 * j + ii] = int8_t(std::max(-4, std::min(3, nearest_int(x[16 * j + ii] / d))) + 4);
  }
  std::memset(y.hmask, 0, sizeof(y.hmask));
  uint8_t U[256];
  for (int j = 0; j < 256; ++j) {  // bit 2 of code j to hmask[j % 32] bit j / 32
    int l = L[j];
    if (l > 3) {
      y.hmask[j % 32] = uint8_t(y.hmask[j % 32] | (1 << (j / 32)));
      l -= 4;
    }
    U[j] = uint8_t(l);
  }
  pack_low2(U, y.qs);
}

void dequantize_block_q4_1(const BlockQ4_1& b, float* y) {
  const float d = f16_to_f32(b.d), m = f16_to_f32(b.m);
  for (int j = 0; j < 16; ++j) {
    y[j] = float(b.qs[j] & 15) * d + m;
    y[j + 16] = float(b.qs[j] >> 4) * d + m;
  }
}

void dequantize_block_q5_1(const BlockQ5_1& b, float* y) {
  const float d = f16_to_f32(b.d), m = f16_to_f32(b.m);
  for (int j = 0; j < 32; ++j) y[j] = float(q5_1_code(b, j)) * d + m;
}

void dequantize_block_q5_k(const BlockQ5_K& b, float* y) {
  const float d = f16_to_f32(b.d), min = f16_to_f32(b.dmin);
  for (int j = 0; j < 8; ++j) {
    uint8_t sc, m;
    q4_k_scale_min(j, b.scales, sc, m);
    const float d1 = d * sc, m1 = min * m;
    for (int l = 0; l < 32; ++l) y[32 * j + l] = d1 * float(q5_k_code(b, 32 * j + l)) - m1;
  }
}

void dequantize_block_q2_k(const BlockQ2_K& b, float* y) {
  const float d = f16_to_f32(b.d), min = f16_to_f32(b.dmin);
  for (int j = 0; j < 256; ++j) {
    const uint8_t sc = b.scales[j / 16];
    const float dl = d * float(sc & 0xF), ml = min * float(sc >> 4);
    y[j] = dl * float(k_low2(b.qs, j)) - ml;
  }
}

void dequantize_block_q3_k(const BlockQ3_K& b, float* y) {
  const float d_all = f16_to_f32(b.d);
  for (int j = 0; j < 256; ++j) y[j] = d_all * float(q3_k_scale(b.scales, j / 16)) * float(q3_k_value_code(b, j));
}

void kquant_ints(QuantFormat f, const uint8_t* block, KQuantInts& o) {
  o.dmin = 0;
  std::fill(o.m, o.m + 256, int8_t(0));
  switch (f) {
    case QuantFormat::Q4_K: case QuantFormat::Q5_K: {
      const bool q5 = f == QuantFormat::Q5_K;
      const auto& b4 = *reinterpret_cast<const BlockQ4_K*>(block);
      const auto& b5 = *reinterpret_cast<const BlockQ5_K*>(block);
      o.d = f16_to_f32(q5 ? b5.d : b4.d);
      o.dmin = f16_to_f32(q5 ? b5.dmin : b4.dmin);
      for (int j = 0; j < 256; ++j) {
        uint8_t sc, m;
        q4_k_scale_min(j / 32, q5 ? b5.scales : b4.scales, sc, m);
        const int g = j / 64, l = j % 32;
        const int q = q5 ? q5_k_code(b5, j) : (j / 32) & 1 ? b4.qs[32 * g + l] >> 4 : b4.qs[32 * g + l] & 15;
        o.p[j] = int16_t(sc * q);
        o.m[j] = int8_t(m);
      }
      return;
    }
    case QuantFormat::Q6_K: {
      const auto& b = *reinterpret_cast<const BlockQ6_K*>(block);
      o.d = f16_to_f32(b.d);
      for (int j = 0; j < 256; ++j) o.p[j] = int16_t(b.scales[j / 16] * (q6_k_code(b, j) - 32));
      return;
    }
    case QuantFormat::Q3_K: {
      const auto& b = *reinterpret_cast<const BlockQ3_K*>(block);
      o.d = f16_to_f32(b.d);
      for (int j = 0; j < 256; ++j) o.p[j] = int16_t(q3_k_scale(b.scales, j / 16) * q3_k_value_code(b, j));
      return;
    }
    case QuantFormat::Q2_K: {
      const auto& b = *reinterpret_cast<const BlockQ2_K*>(block);
      o.d = f16_to_f32(b.d);
      o.dmin = f16_to_f32(b.dmin);
      for (int j = 0; j < 256; ++j) {
        o.p[j] = int16_t((b.scales[j / 16] & 15) * k_low2(b.qs, j));
        o.m[j] = int8_t(b.scales[j / 16] >> 4);
      }
      return;
    }
    default: throw Error("kquant_ints: " + std::string(quant_traits(f).name) + " is not a K-quant format");
  }
}

void quantize_gguf(const float* x, QuantWeight& q) {
  const GgufLayout lay = layout_of(q.format);
  const int64_t N = q.rows, K = q.cols;
  if (K % lay.qk != 0)
    throw Error("quantize " + std::string(quant_traits(q.format).name) + ": row length " + std::to_string(K) +
                " is not a multiple of the block size " + std::to_string(lay.qk) + " (GGUF has no padding)");
  for (int64_t i = 0; i < N * K; ++i)
    if (!std::isfinite(x[i]))
      throw Error("quantize " + std::string(quant_traits(q.format).name) + ": weight element [" +
                  std::to_string(i / K) + ", " + std::to_string(i % K) + "] is not finite");
  const int64_t nbr = K / lay.qk;
  q.data = Tensor::empty(DType::U8, {N, nbr * int64_t(lay.bytes)}, MemCategory::Weights);
  uint8_t* d = q.data.data<uint8_t>();
  // Rows are independent (the K-quants' scale searches make this the slow part of writing a GGUF).
  ThreadPool::global().parallel_for(N, std::max<int64_t>(1, 4096 / nbr), [&](int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; ++r)
    for (int64_t b = 0; b < nbr; ++b) {
      const float* src = x + r * K + b * lay.qk;
      uint8_t* dst = d + (r * nbr + b) * int64_t(lay.bytes);
      switch (q.format) {
        case QuantFormat::Q4_0: quantize_block_q4_0(src, *reinterpret_cast<BlockQ4_0*>(dst)); break;
        case QuantFormat::Q8_0: quantize_block_q8_0(src, *reinterpret_cast<BlockQ8_0*>(dst)); break;
        case QuantFormat::Q5_0: quantize_block_q5_0(src, *reinterpret_cast<BlockQ5_0*>(dst)); break;
        case QuantFormat::Q6_K: quantize_block_q6_k(src, *reinterpret_cast<BlockQ6_K*>(dst)); break;
        case QuantFormat::Q4_1: quantize_block_q4_1(src, *reinterpret_cast<BlockQ4_1*>(dst)); break;
        case QuantFormat::Q5_1: quantize_block_q5_1(src, *reinterpret_cast<BlockQ5_1*>(dst)); break;
        case QuantFormat::Q5_K: quantize_block_q5_k(src, *reinterpret_cast<BlockQ5_K*>(dst)); break;
        case QuantFormat::Q2_K: quantize_block_q2_k(src, *reinterpret_cast<BlockQ2_K*>(dst)); break;
        case QuantFormat::Q3_K: quantize_block_q3_k(src, *reinterpret_cast<BlockQ3_K*>(dst)); break;
        default: quantize_block_q4_k(src, *reinterpret_cast<BlockQ4_K*>(dst)); break;
      }
    }
  });
}

void dequantize_gguf(const QuantWeight& q, int64_t row, int64_t k0, int64_t n, float* out) {
  const GgufLayout lay = layout_of(q.format);
  const int64_t nbr = q.cols / lay.qk;
  const uint8_t* d = q.data.data<uint8_t>() + row * nbr * int64_t(lay.bytes);
  float tmp[256];
  for (int64_t k = k0; k < k0 + n;) {
    const int64_t b = k / lay.qk, off = k - b * lay.qk, take = std::min<int64_t>(lay.qk - off, k0 + n - k);
    const uint8_t* blk = d + b * int64_t(lay.bytes);
    switch (q.format) {
      case QuantFormat::Q4_0: dequantize_block_q4_0(*reinterpret_cast<const BlockQ4_0*>(blk), tmp); break;
      case QuantFormat::Q8_0: dequantize_block_q8_0(*reinterpret_cast<const BlockQ8_0*>(blk), tmp); break;
      case QuantFormat::Q5_0: dequantize_block_q5_0(*reinterpret_cast<const BlockQ5_0*>(blk), tmp); break;
      case QuantFormat::Q6_K: dequantize_block_q6_k(*reinterpret_cast<const BlockQ6_K*>(blk), tmp); break;
      case QuantFormat::Q4_1: dequantize_block_q4_1(*reinterpret_cast<const BlockQ4_1*>(blk), tmp); break;
      case QuantFormat::Q5_1: dequantize_block_q5_1(*reinterpret_cast<const BlockQ5_1*>(blk), tmp); break;
      case QuantFormat::Q5_K: dequantize_block_q5_k(*reinterpret_cast<const BlockQ5_K*>(blk), tmp); break;
      case QuantFormat::Q2_K: dequantize_block_q2_k(*reinterpret_cast<const BlockQ2_K*>(blk), tmp); break;
      case QuantFormat::Q3_K: dequantize_block_q3_k(*reinterpret_cast<const BlockQ3_K*>(blk), tmp); break;
      default: dequantize_block_q4_k(*reinterpret_cast<const BlockQ4_K*>(blk), tmp); break;
    }
    std::memcpy(out + (k - k0), tmp + off, size_t(take) * 4);
    k += take;
  }
}

}  // namespace qforge::quant_detail
