// src/quant/quant_codecs.h — scalar element codecs shared by the quantizers, the CPU kernels and the
// tests: FP8 E4M3/E5M2, E2M1, E8M0, the NF4/FP4 tables and decision trees, the bnb 8-bit dynamic map,
// the exact emulation of CUDA's rcp.approx.ftz.f32, and the GGUF block structs.
#pragma once
#include <array>
#include <cmath>
#include <cstdint>

#include "qforge/dtype.h"
#include "qforge/quant.h"

namespace qforge::quant_detail {

// ---- CUDA fast-math emulation (bitsandbytes kernels are built with --use_fast_math) ----
// rcp.approx.ftz.f32, bit-exact on all 2^32 inputs (verified on an H100, see src/quant/gen/). Also
// equals div.approx.ftz.f32(a, b) == a * rcp_approx_ftz(b) for a = 127 (verified on all b).
float rcp_approx_ftz(float x);
// Flush a subnormal to a zero of the same sign (the .ftz of the fast-math kernels).
inline float ftz(float v) { return std::fabs(v) < 1.17549435e-38f ? std::copysign(0.0f, v) : v; }

// ---- FP8 ----
enum class Fp8Kind : uint8_t { E4M3, E5M2 };
struct Fp8Spec { int mbits, bias; uint8_t max_code; float max_finite; };
constexpr Fp8Spec fp8_spec(Fp8Kind k) {
  return k == Fp8Kind::E4M3 ? Fp8Spec{3, 7, 0x7E, 448.0f} : Fp8Spec{2, 15, 0x7B, 57344.0f};
}
float fp8_to_f32(uint8_t code, Fp8Kind k);
// Round-to-nearest-even from f32 (exact value), as __nv_cvt_float_to_fp8. saturate = SATFINITE:
// overflow and +-inf go to +-max; otherwise E4M3 overflow gives NaN 0x7F and E5M2 gives +-inf.
uint8_t f32_to_fp8(float x, Fp8Kind k, bool saturate = true);
// All 256 decoded values (built once from fp8_to_f32).
const std::array<float, 256>& fp8_table(Fp8Kind k);
inline float e4m3_to_f32(uint8_t c) { return fp8_table(Fp8Kind::E4M3)[c]; }
inline uint8_t f32_to_e4m3(float x) { return f32_to_fp8(x, Fp8Kind::E4M3, true); }

// ---- E2M1 (FP4 of NVFP4/MXFP4) and E8M0 ----
inline constexpr std::array<float, 16> kE2M1Values = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f,
                                                      -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f};
// RNE, saturating at +-6, NaN -> 0x7 (as __nv_cvt_float_to_fp4).
uint8_t f32_to_e2m1(float x);
inline float e2m1_to_f32(uint8_t c) { return kE2M1Values[c & 15]; }
// 2^(e-127); 0xFF is NaN.
inline float e8m0_to_f32(uint8_t e) { return e == 0xFF ? NAN : std::ldexp(1.0f, int(e) - 127); }

// ---- bitsandbytes 4-bit ----
extern const std::array<float, 16> kNf4Values;      // §1.1, index = code
extern const std::array<float, 16> kFp4Values;      // §2 quant_map, bit-pattern order (index 8 is -0)
extern const std::array<float, 256> kDynamicMap8;   // §3 create_dynamic_map(signed=True), verified hex
uint8_t quantize_nf4_code(float y);  // dQuantizeNF4: count of thresholds t_i with y > t_i
uint8_t quantize_fp4_code(float y);  // dQuantizeFP4 with the CUDA literals
uint8_t quantize_dynamic8(float x);  // dQuantize<0> over kDynamicMap8, the kernel's search and tie rule

// ---- GGUF blocks (bit-identical to ggml-common.h) ----
struct BlockQ4_0 { uint16_t d; uint8_t qs[16]; };
struct BlockQ8_0 { uint16_t d; int8_t qs[32]; };
struct BlockQ4_K { uint16_t d, dmin; uint8_t scales[12]; uint8_t qs[128]; };
struct BlockQ5_0 { uint16_t d; uint8_t qh[4]; uint8_t qs[16]; };                   // bit 4 of code j in qh bit j
struct BlockQ6_K { uint8_t ql[128]; uint8_t qh[64]; int8_t scales[16]; uint16_t d; };  // codes 0..63, -32
static_assert(sizeof(BlockQ4_0) == 18 && sizeof(BlockQ8_0) == 34 && sizeof(BlockQ4_K) == 144);
struct BlockQ4_1 { uint16_t d, m; uint8_t qs[16]; };                               // value code * d + m
struct BlockQ5_1 { uint16_t d, m; uint8_t qh[4]; uint8_t qs[16]; };                // value code * d + m
struct BlockQ5_K { uint16_t d, dmin; uint8_t scales[12]; uint8_t qh[32]; uint8_t qs[128]; };
static_assert(sizeof(BlockQ5_0) == 22 && sizeof(BlockQ6_K) == 210);
struct BlockQ2_K { uint8_t scales[16]; uint8_t qs[64]; uint16_t d, dmin; };  // scale | min << 4 per 16
struct BlockQ3_K { uint8_t hmask[32]; uint8_t qs[64]; uint8_t scales[12]; uint16_t d; };  // 6-bit scales - 32
static_assert(sizeof(BlockQ4_1) == 20 && sizeof(BlockQ5_1) == 24 && sizeof(BlockQ5_K) == 176);
static_assert(sizeof(BlockQ2_K) == 84 && sizeof(BlockQ3_K) == 110);
void quantize_block_q4_0(const float* x, BlockQ4_0& b);   // quantize_row_q4_0_ref, one block of 32
void quantize_block_q8_0(const float* x, BlockQ8_0& b);   // quantize_row_q8_0_ref, one block of 32
void quantize_block_q4_k(const float* x, BlockQ4_K& b);   // quantize_row_q4_K_ref, one block of 256
void quantize_block_q5_0(const float* x, BlockQ5_0& b);   // quantize_row_q5_0_ref, one block of 32
void quantize_block_q6_k(const float* x, BlockQ6_K& b);   // quantize_row_q6_K_ref, one block of 256
void quantize_block_q4_1(const float* x, BlockQ4_1& b);   // quantize_row_q4_1_ref, one block of 32
void quantize_block_q5_1(const float* x, BlockQ5_1& b);   // quantize_row_q5_1_ref, one block of 32
void quantize_block_q5_k(const float* x, BlockQ5_K& b);   // quantize_row_q5_K_ref, one block of 256
void quantize_block_q2_k(const float* x, BlockQ2_K& b);   // quantize_row_q2_K_ref, one block of 256
void quantize_block_q3_k(const float* x, BlockQ3_K& b);   // quantize_row_q3_K_ref, one block of 256
void dequantize_block_q4_0(const BlockQ4_0& b, float* y);
void dequantize_block_q8_0(const BlockQ8_0& b, float* y);
void dequantize_block_q4_k(const BlockQ4_K& b, float* y);
void dequantize_block_q5_0(const BlockQ5_0& b, float* y);
void dequantize_block_q6_k(const BlockQ6_K& b, float* y);
void dequantize_block_q4_1(const BlockQ4_1& b, float* y);
void dequantize_block_q5_1(const BlockQ5_1& b, float* y);
void dequantize_block_q5_k(const BlockQ5_K& b, float* y);
void dequantize_block_q2_k(const BlockQ2_K& b, float* y);
void dequantize_block_q3_k(const BlockQ3_K& b, float* y);
// Q2_K / Q3_K: the low two bits of element j (half n = j / 128, 32-weight quarter j4, lane l = j % 32) are bits
// 2 j4 of qs[32 n + l]; Q3_K's third bit is bit j / 32 of hmask[l] (set: code - 0, clear: code - 4).
inline int k_low2(const uint8_t* qs, int j) { return (qs[32 * (j / 128) + j % 32] >> (2 * ((j % 128) / 32))) & 3; }
inline int q3_k_value_code(const BlockQ3_K& b, int j) {  // -4..3
  return k_low2(b.qs, j) - (((b.hmask[j % 32] >> (j / 32)) & 1) ? 0 : 4);
}
// Q3_K sub-block s (0..15): its 6-bit scale minus 32.
inline int q3_k_scale(const uint8_t* scales12, int s) {
  const int low4 = s < 8 ? scales12[s] & 15 : scales12[s - 8] >> 4;
  return (low4 | ((scales12[8 + s % 4] >> (2 * (s / 4))) & 3) << 4) - 32;
}
// Code (0..31) of element j of a Q5_K super-block: 64-weight group g = j / 64 takes its low nibbles from
// qs[32 g ..] (the high nibble for its second 32) and bit 2 g (+1 for the second 32) of qh[j % 32].
inline int q5_k_code(const BlockQ5_K& b, int j) {
  const int g = j / 64, second = (j / 32) & 1, l = j % 32;
  const int lo = second ? b.qs[32 * g + l] >> 4 : b.qs[32 * g + l] & 15;
  return lo | ((b.qh[l] >> (2 * g + second)) & 1) << 4;
}
// Code (0..31) of element j of a Q5_0 / Q5_1 block: low nibbles qs[j] (j < 16) or high qs[j - 16], bit j of qh.
inline int q5_code(const uint8_t* qh4, const uint8_t* qs, int j) {
  const int lo = j < 16 ? qs[j] & 15 : qs[j - 16] >> 4;
  return lo | ((qh4[j / 8] >> (j % 8)) & 1) << 4;
}
inline int q5_0_code(const BlockQ5_0& b, int j) { return q5_code(b.qh, b.qs, j); }  // value (code - 16) * d
inline int q5_1_code(const BlockQ5_1& b, int j) { return q5_code(b.qh, b.qs, j); }  // value code * d + m
// Code (0..63) of element j of a Q6_K super-block; the value is d * scales[j / 16] * (code - 32).
inline int q6_k_code(const BlockQ6_K& b, int j) {
  const int half = j / 128, l = j % 32, quarter = (j % 128) / 32;  // 32-element quarter of a 128 half
  const uint8_t lo = b.ql[half * 64 + l + 32 * (quarter & 1)];
  const int low4 = quarter < 2 ? lo & 15 : lo >> 4;
  return low4 | ((b.qh[half * 32 + l] >> (2 * quarter)) & 3) << 4;
}
// A K-quant super-block (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K) in integers: element j is d * p[j] - dmin * m[j], with
// p = sub-block scale x value code (|p| <= 4096) and m the sub-block's minimum code (0 where the format has
// none: dmin = 0). The same values as dequantize_block_* up to f32 rounding (d * (sc * q) against (d * sc) * q).
// What integer-activation kernels multiply (kquant_amx.cpp); throws qforge::Error for another format.
struct KQuantInts {
  float d = 0, dmin = 0;
  int16_t p[256];
  int8_t m[256];
};
void kquant_ints(QuantFormat f, const uint8_t* block, KQuantInts& out);
// get_scale_min_k4: 6-bit scale and min of sub-block j (0..7).
inline void q4_k_scale_min(int j, const uint8_t* s, uint8_t& sc, uint8_t& m) {
  if (j < 4) { sc = s[j] & 63; m = s[j + 4] & 63; }
  else { sc = uint8_t((s[j + 4] & 15) | ((s[j - 4] >> 6) << 4)); m = uint8_t((s[j + 4] >> 4) | ((s[j] >> 6) << 4)); }
}

}  // namespace qforge::quant_detail
