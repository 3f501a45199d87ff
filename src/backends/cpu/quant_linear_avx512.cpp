// src/backends/cpu/quant_linear_avx512.cpp — AVX-512 kernels of quant_linear_cpu (only called when the CPU
// has avx512f/bw/vl/dq/vnni, see best_isa()). Float path: a block of rows is decoded 32 weights at a time
// (LUT via vpermps, int8/fp8 via widen + F16C; nf4/fp4/nvfp4/mxfp4 rows of whole 128-column chunks 128 at a time
// from one 64-byte load) into an L1 tile, then a 4-row x 4-token FMA micro-kernel; one token (decode)
// skips the tile: 4 rows decoded straight into FMAs (gemv_rows).
// Integer path (q4_0, q8_0 with ActMode::Int8): vpdpbusd against int8-quantized activations, groups of
// rows sharing each activation load, register-only accumulation, next group prefetched into L2.
// The target pragma covers only code below the includes; nothing here instantiates std templates.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "backends/cpu/quant_linear_kernels.h"
#include "quant/quant_codecs.h"

#pragma GCC push_options
// GCC 12 false positives on the _mm512_undefined_* operand inside the intrinsics headers.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c,bmi,bmi2")

namespace qforge::cpu_quant {
namespace {

constexpr int kRowBlock = 4;    // rows decoded per tile
constexpr int kSeg = 1024;      // tile width (weights per row)

inline float half_to_float(uint16_t h) { return _cvtsh_ss(h); }

inline float hsum512(__m512 v) { return _mm512_reduce_add_ps(v); }

inline float bnb_absmax(const KernelArgs& a, int64_t b) {
  if (!a.double_quant) return reinterpret_cast<const float*>(a.scales)[b];
  const float t = a.dmap8[a.scales[b]] * a.scales2[b / 256];
  return t + a.offset;
}

// Row multiplier applied to the whole row's dot product (per-row / per-tensor scales).
inline float row_mult(const KernelArgs& a, int64_t r) {
  switch (a.format) {
    case QuantFormat::INT8: return reinterpret_cast<const float*>(a.scales)[r] * 7.874015718698502e-3f;
    case QuantFormat::FP8_E4M3:
      return reinterpret_cast<const float*>(a.scales)[a.per_channel ? r : 0] * 256.0f;  // e4m3 read as f16 * 2^-8
    case QuantFormat::FP8_E5M2: return reinterpret_cast<const float*>(a.scales)[a.per_channel ? r : 0];
    case QuantFormat::NVFP4: return a.scales2[0];
    default: return 1.0f;
  }
}

// ---- decoders: 32 weights of row r at column k (k % 32 == 0), in kernel order, as two vectors ----
// Each decoder is constructed once per call (shared constants in registers) and inlined into both the
// tile path (decode_tile: prefill, several tokens) and the one-token path (gemv_rows).
struct DecBnb4 {
  static constexpr int kChunk = 32;  // weights per at() call
  const KernelArgs& a;
  __m512 lut;
  int shift;  // log2(block) when the block is a power of two (bitsandbytes: 64), else -1 (a division)
  explicit DecBnb4(const KernelArgs& args) : a(args), lut(_mm512_loadu_ps(args.lut16)) {
    shift = (a.block & (a.block - 1)) == 0 ? __builtin_ctz(unsigned(a.block)) : -1;
  }
  void at(int64_t r, int64_t k, __m512* w) const {
    const int64_t e = r * a.cols + k;
    // The table times the block's absmax (the same products as scaling each looked-up value): one
    // multiply per 32 weights instead of two.
    const __m512 ls = _mm512_mul_ps(lut, _mm512_set1_ps(bnb_absmax(a, shift >= 0 ? e >> shift : e / a.block)));
    // vpermps reads the low 4 bits of each index: the low nibble needs no mask.
    const __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a.data + e / 2)));
    w[0] = _mm512_permutexvar_ps(_mm512_srli_epi32(v, 4), ls);  // high nibble = even element
    w[1] = _mm512_permutexvar_ps(v, ls);
  }
};

// e4m3 -> f16 bit pattern of value * 2^-8: sign to bit 15, exponent+mantissa shifted by 7 (subnormals
// included); e5m2 is the high byte of an f16. (The e4m3 NaN code 0x7F is not produced by the quantizer.)
template <bool E4M3>
inline __m512 fp8x16(__m128i b) {
  __m256i h;
  if constexpr (E4M3) {
    h = _mm256_and_si256(_mm256_slli_epi16(_mm256_cvtepi8_epi16(b), 7), _mm256_set1_epi16(int16_t(0xBFFF)));
  } else {
    h = _mm256_slli_epi16(_mm256_cvtepu8_epi16(b), 8);
  }
  return _mm512_cvtph_ps(h);
}

// The 128 codes at p (64 bytes) through a 16-entry table: w[q] lane j = the table at the code in bits
// 4q..4q+3 of dword j (vpermps reads only the low 4 bits of each index: no mask, no widening).
inline void lookup128(const uint8_t* p, __m512 lut, __m512* w) {
  const __m512i v = _mm512_loadu_si512(p);
  w[0] = _mm512_permutexvar_ps(v, lut);
  w[1] = _mm512_permutexvar_ps(_mm512_srli_epi32(v, 4), lut);
  w[2] = _mm512_permutexvar_ps(_mm512_srli_epi32(v, 8), lut);
  w[3] = _mm512_permutexvar_ps(_mm512_srli_epi32(v, 12), lut);
  w[4] = _mm512_permutexvar_ps(_mm512_srli_epi32(v, 16), lut);
  w[5] = _mm512_permutexvar_ps(_mm512_srli_epi32(v, 20), lut);
  w[6] = _mm512_permutexvar_ps(_mm512_srli_epi32(v, 24), lut);
  w[7] = _mm512_permutexvar_ps(_mm512_srli_epi32(v, 28), lut);
}

// nf4 / fp4 rows of whole 128-column chunks (KernelArgs::wide == 128: cols % 128 == 0, power-of-two block >= 64):
// one 64-byte load holds 128 codes, and dword lane j shifted right by 4q has in its low 4 bits (all vpermps
// reads) the code of element 8j + (q ^ 1), so 8 lookups need no widening (the 32-weight decoder spends a
// port-5 widening per 16 codes). The activations come in that order (kernel_order_x). Lanes 0-7 cover
// elements 0..63, lanes 8-15 elements 64..127: a block of 64 gives two scale halves, a larger block one.
struct DecBnb4x128 {
  static constexpr int kChunk = 128;
  const KernelArgs& a;
  __m512 lut;
  int shift;  // log2(block), >= 6
  explicit DecBnb4x128(const KernelArgs& args)
      : a(args), lut(_mm512_loadu_ps(args.lut16)), shift(__builtin_ctz(unsigned(args.block))) {}
  // The table values (unscaled) of the chunk's 128 weights, vector q lane j = element 8j + (q ^ 1).
  void codes(int64_t r, int64_t k, __m512* w) const { lookup128(a.data + (r * a.cols + k) / 2, lut, w); }
  __m512 scale(int64_t r, int64_t k) const {
    const int64_t b = (r * a.cols + k) >> shift;
    if (shift > 6) return _mm512_set1_ps(bnb_absmax(a, b));
    return _mm512_insertf32x8(_mm512_set1_ps(bnb_absmax(a, b)), _mm256_set1_ps(bnb_absmax(a, b + 1)), 1);
  }
};

struct DecE2m1 {
  static constexpr int kChunk = 32;  // weights per at() call
  const KernelArgs& a;
  __m512 lut;
  bool nv;
  int64_t row_bytes, row_scales;
  explicit DecE2m1(const KernelArgs& args)
      : a(args), lut(_mm512_loadu_ps(args.lut16)), nv(args.format == QuantFormat::NVFP4) {
    const int64_t Kp = nv ? (a.cols + 15) / 16 * 16 : (a.cols + 31) / 32 * 32;
    row_bytes = Kp / 2;
    row_scales = Kp / (nv ? 16 : 32);
  }
  void at(int64_t r, int64_t k, __m512* w) const {
    const uint8_t* sc = a.scales + r * row_scales;
    __m512 s;
    if (nv) {  // lanes 0-7 of both halves are elements 0..15 (block k/16), lanes 8-15 block k/16+1
      s = _mm512_insertf32x8(_mm512_set1_ps(a.e4m3[sc[k >> 4]]), _mm256_set1_ps(a.e4m3[sc[(k >> 4) + 1]]), 1);
    } else {
      s = _mm512_set1_ps(e8m0_value(sc[k >> 5]));
    }
    const __m512i v =
        _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a.data + r * row_bytes + k / 2)));
    w[0] = _mm512_mul_ps(_mm512_permutexvar_ps(v, lut), s);  // low nibble = even element (vpermps: low 4 bits)
    w[1] = _mm512_mul_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(v, 4), lut), s);
  }
};

// nvfp4 / mxfp4 rows of whole 128-column chunks (KernelArgs::wide == 128): the codes as in DecBnb4x128 (low
// nibble first, so vector q lane j = element 8j + q). nvfp4: lane j's block of 16 is j / 2, so the 8 e4m3 block
// scales of the chunk, each byte doubled, decode in one fp8x16 (value * 2^-8, exact; the 2^8 goes back here).
// mxfp4 (MX): lane j's block of 32 is j / 4; the 4 e8m0 scales, each byte 4 times, become 2^(e - 127) by a
// shift into the exponent field (e = 0: 2^-127, e = 255: NaN, as e8m0_value).
template <bool MX>
struct DecE2m1x128 {
  static constexpr int kChunk = 128;
  const KernelArgs& a;
  __m512 lut;
  explicit DecE2m1x128(const KernelArgs& args) : a(args), lut(_mm512_loadu_ps(args.lut16)) {}
  void codes(int64_t r, int64_t k, __m512* w) const { lookup128(a.data + (r * a.cols + k) / 2, lut, w); }
  __m512 scale(int64_t r, int64_t k) const {
    if constexpr (MX) {
      int32_t sb;
      std::memcpy(&sb, a.scales + (r * a.cols + k) / 32, 4);
      const __m512i e = _mm512_cvtepu8_epi32(
          _mm_shuffle_epi8(_mm_cvtsi32_si128(sb), _mm_setr_epi8(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3)));
      __m512i bits = _mm512_slli_epi32(e, 23);
      bits = _mm512_mask_mov_epi32(bits, _mm512_cmpeq_epi32_mask(e, _mm512_setzero_si512()), _mm512_set1_epi32(0x00400000));
      bits = _mm512_mask_mov_epi32(bits, _mm512_cmpeq_epi32_mask(e, _mm512_set1_epi32(255)), _mm512_set1_epi32(0x7fc00000));
      return _mm512_castsi512_ps(bits);
    } else {
      const __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(a.scales + (r * a.cols + k) / 16));
      return _mm512_mul_ps(fp8x16<true>(_mm_unpacklo_epi8(b, b)), _mm512_set1_ps(256.0f));
    }
  }
};

struct DecInt8 {
  static constexpr int kChunk = 32;  // weights per at() call
  const KernelArgs& a;
  explicit DecInt8(const KernelArgs& args) : a(args) {}
  void at(int64_t r, int64_t k, __m512* w) const {
    const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.data + r * a.cols + k));
    w[0] = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_castsi256_si128(b)));
    w[1] = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_extracti128_si256(b, 1)));
  }
};

template <bool E4M3>
struct DecFp8 {
  static constexpr int kChunk = 32;  // weights per at() call
  const KernelArgs& a;
  explicit DecFp8(const KernelArgs& args) : a(args) {}
  void at(int64_t r, int64_t k, __m512* w) const {
    const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.data + r * a.cols + k));
    w[0] = fp8x16<E4M3>(_mm256_castsi256_si128(b));
    w[1] = fp8x16<E4M3>(_mm256_extracti128_si256(b, 1));
  }
};

inline float block_half(const uint8_t* blk) {
  uint16_t dh;
  std::memcpy(&dh, blk, 2);
  return half_to_float(dh);
}

// q4_0 (value (code - 8) d) and, with Min, q4_1 (value code d + m; f16 d and m lead the block).
template <bool Min>
struct DecQ4_0T {
  static constexpr int kChunk = 32;  // weights per at() call
  static constexpr int kBytes = Min ? 20 : 18, kCodes = Min ? 4 : 2;
  const KernelArgs& a;
  __m512i m15 = _mm512_set1_epi32(15), eight = _mm512_set1_epi32(Min ? 0 : 8);
  explicit DecQ4_0T(const KernelArgs& args) : a(args) {}
  void at(int64_t r, int64_t k, __m512* w) const {
    const uint8_t* blk = a.data + (r * (a.cols / 32) + k / 32) * kBytes;
    const __m512 s = _mm512_set1_ps(block_half(blk)), m = _mm512_set1_ps(Min ? block_half(blk + 2) : 0.0f);
    const __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + kCodes)));
    const __m512 c0 = _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_and_si512(v, m15), eight));
    const __m512 c1 = _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_srli_epi32(v, 4), eight));
    w[0] = Min ? _mm512_fmadd_ps(c0, s, m) : _mm512_mul_ps(c0, s);
    w[1] = Min ? _mm512_fmadd_ps(c1, s, m) : _mm512_mul_ps(c1, s);
  }
};
using DecQ4_0 = DecQ4_0T<false>;

struct DecQ8_0 {
  static constexpr int kChunk = 32;  // weights per at() call
  const KernelArgs& a;
  explicit DecQ8_0(const KernelArgs& args) : a(args) {}
  void at(int64_t r, int64_t k, __m512* w) const {
    const uint8_t* blk = a.data + (r * (a.cols / 32) + k / 32) * 34;
    const __m512 s = _mm512_set1_ps(block_half(blk));
    const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2));
    w[0] = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_castsi256_si128(b))), s);
    w[1] = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_extracti128_si256(b, 1))), s);
  }
};

// q5_0 (value (code - 16) d) and, with Min, q5_1 (value code d + m); bit j of qh is bit 4 of code j.
template <bool Min>
struct DecQ5_0T {
  static constexpr int kChunk = 32;  // weights per at() call
  static constexpr int kBytes = Min ? 24 : 22, kQh = Min ? 4 : 2;
  const KernelArgs& a;
  __m512i m15 = _mm512_set1_epi32(15), sixteen = _mm512_set1_epi32(16), off = _mm512_set1_epi32(Min ? 0 : 16);
  explicit DecQ5_0T(const KernelArgs& args) : a(args) {}
  void at(int64_t r, int64_t k, __m512* w) const {
    const uint8_t* blk = a.data + (r * (a.cols / 32) + k / 32) * kBytes;
    const __m512 s = _mm512_set1_ps(block_half(blk)), m = _mm512_set1_ps(Min ? block_half(blk + 2) : 0.0f);
    uint32_t qh;  // bit j: the fifth bit of code j
    std::memcpy(&qh, blk + kQh, 4);
    const __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + kQh + 4)));
    const __m512i lo = _mm512_and_si512(v, m15), hi = _mm512_srli_epi32(v, 4);
    const __m512i c0 = _mm512_mask_or_epi32(lo, __mmask16(qh), lo, sixteen);
    const __m512i c1 = _mm512_mask_or_epi32(hi, __mmask16(qh >> 16), hi, sixteen);
    const __m512 f0 = _mm512_cvtepi32_ps(_mm512_sub_epi32(c0, off)), f1 = _mm512_cvtepi32_ps(_mm512_sub_epi32(c1, off));
    w[0] = Min ? _mm512_fmadd_ps(f0, s, m) : _mm512_mul_ps(f0, s);
    w[1] = Min ? _mm512_fmadd_ps(f1, s, m) : _mm512_mul_ps(f1, s);
  }
};

// Q6_K, a whole super-block per call (wide chunk 256, plain order): the codes of each 32-weight quarter
// made as bytes in one 256-bit register (low nibbles of ql, two bits of qh), minus 32; every 16-weight
// vector is one sub-block, so its scale d * scales[j] is a broadcast.
struct DecQ6_Kx256 {
  static constexpr int kChunk = 256;
  const KernelArgs& a;
  explicit DecQ6_Kx256(const KernelArgs& args) : a(args) {}
  // Signed codes (code - 32) of half h as 4 quarters x 32 bytes.
  static void codes(const uint8_t* blk, int h, __m256i* c) {
    const __m256i m4 = _mm256_set1_epi8(15), m2 = _mm256_set1_epi8(3), off = _mm256_set1_epi8(32);
    const uint8_t* ql = blk + 64 * h;
    const __m256i l0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql));
    const __m256i l1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql + 32));
    const __m256i hb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 128 + 32 * h));
    const __m256i lo[4] = {_mm256_and_si256(l0, m4), _mm256_and_si256(l1, m4), _mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
                           _mm256_and_si256(_mm256_srli_epi16(l1, 4), m4)};
    const __m256i hi[4] = {_mm256_and_si256(hb, m2), _mm256_and_si256(_mm256_srli_epi16(hb, 2), m2),
                           _mm256_and_si256(_mm256_srli_epi16(hb, 4), m2), _mm256_and_si256(_mm256_srli_epi16(hb, 6), m2)};
    for (int q = 0; q < 4; ++q) c[q] = _mm256_sub_epi8(_mm256_or_si256(lo[q], _mm256_slli_epi16(hi[q], 4)), off);
  }
  static __m512 vec(const __m256i* c, int v) {  // weights 16 v .. 16 v + 15 of the half, as floats
    const __m128i b = (v & 1) ? _mm256_extracti128_si256(c[v / 2], 1) : _mm256_castsi256_si128(c[v / 2]);
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(b));
  }
  static __m512 scale_vec(const uint8_t* blk) {  // d * scales[j], j = 0..15 (exact in f32)
    const __m128i sc = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + offsetof(quant_detail::BlockQ6_K, scales)));
    const float d = block_half(blk + offsetof(quant_detail::BlockQ6_K, d));
    return _mm512_mul_ps(_mm512_set1_ps(d), _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(sc)));
  }
  void at(int64_t r, int64_t k, __m512* w) const {
    const uint8_t* blk = gguf_block<quant_detail::BlockQ6_K, 256>(a, r, k);
    alignas(64) float s[16];
    _mm512_store_ps(s, scale_vec(blk));
    for (int h = 0; h < 2; ++h) {
      __m256i c[4];
      codes(blk, h, c);
      for (int v = 0; v < 8; ++v) w[8 * h + v] = _mm512_mul_ps(vec(c, v), _mm512_set1_ps(s[8 * h + v]));
    }
  }
  __m512 dot(int64_t r, int64_t k, const __m512* xv, const __m512*) const {
    const uint8_t* blk = gguf_block<quant_detail::BlockQ6_K, 256>(a, r, k);
    alignas(64) float s[16];
    _mm512_store_ps(s, scale_vec(blk));
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    for (int h = 0; h < 2; ++h) {
      __m256i c[4];
      codes(blk, h, c);
      for (int v = 0; v < 8; v += 2) {
        acc0 = _mm512_fmadd_ps(_mm512_mul_ps(vec(c, v), xv[8 * h + v]), _mm512_set1_ps(s[8 * h + v]), acc0);
        acc1 = _mm512_fmadd_ps(_mm512_mul_ps(vec(c, v + 1), xv[8 * h + v + 1]), _mm512_set1_ps(s[8 * h + v + 1]), acc1);
      }
    }
    return _mm512_add_ps(acc0, acc1);
  }
};

// q4_k and, with Q5, q5_k (the fifth bit of sub-block j's codes is bit j of qh[l]): 32 weights, one sub-block.
template <bool Q5>
struct DecQxK {
  static constexpr int kChunk = 32;  // weights per at() call
  static constexpr int kCodes = Q5 ? 48 : 16;
  const KernelArgs& a;
  __m512i m15 = _mm512_set1_epi32(15), one = _mm512_set1_epi32(1);
  explicit DecQxK(const KernelArgs& args) : a(args) {}
  void at(int64_t r, int64_t k, __m512* w) const {
    const uint8_t* blk = Q5 ? gguf_block<quant_detail::BlockQ5_K, 256>(a, r, k) : q4_k_block(a, r, k);
    const int j = int((k / 32) % 8);
    uint8_t sc, m;
    quant_detail::q4_k_scale_min(j, blk + 4, sc, m);
    const __m512 s = _mm512_set1_ps(block_half(blk) * float(sc));
    const __m512 mn = _mm512_set1_ps(block_half(blk + 2) * float(m));
    const uint8_t* q = blk + kCodes + (j / 2) * 32;
    for (int i = 0; i < 2; ++i) {
      const __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q + 16 * i)));
      __m512i n = (j & 1) ? _mm512_srli_epi32(v, 4) : _mm512_and_si512(v, m15);
      if constexpr (Q5) {
        const __m512i h = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 16 + 16 * i)));
        n = _mm512_or_si512(n, _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(h, unsigned(j)), one), 4));
      }
      w[i] = _mm512_fmsub_ps(_mm512_cvtepi32_ps(n), s, mn);
    }
  }
};
using DecQ4_K = DecQxK<false>;

// q2_k (value d sc code - dmin m) and, with Q3, q3_k (value d sc (code - 4), code's third bit from hmask):
// 32 weights, two 16-weight sub-blocks (K23Chunk).
template <bool Q3>
struct DecQ23K {
  static constexpr int kChunk = 32;  // weights per at() call
  const KernelArgs& a;
  __m512i m3 = _mm512_set1_epi32(3), one = _mm512_set1_epi32(1), four = _mm512_set1_epi32(4);
  explicit DecQ23K(const KernelArgs& args) : a(args) {}
  void at(int64_t r, int64_t k, __m512* w) const {
    const K23Chunk c = k23_chunk<Q3>(a, r, k, block_half);
    const __m128i sh = _mm_cvtsi32_si128(c.shift), hb = _mm_cvtsi32_si128(c.hbit);
    for (int i = 0; i < 2; ++i) {
      const __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(c.qs + 16 * i)));
      __m512i code = _mm512_and_si512(_mm512_srl_epi32(v, sh), m3);
      if constexpr (Q3) {
        const __m512i h = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(c.hmask + 16 * i)));
        code = _mm512_sub_epi32(_mm512_or_si512(code, _mm512_slli_epi32(_mm512_and_si512(_mm512_srl_epi32(h, hb), one), 2)), four);
      }
      w[i] = _mm512_fmsub_ps(_mm512_cvtepi32_ps(code), _mm512_set1_ps(i ? c.s1 : c.s0), _mm512_set1_ps(i ? c.m1 : c.m0));
    }
  }
};

// q4_k rows (KernelArgs::wide == 256: one super-block a chunk). Each half (128 weights, 64 code bytes) goes
// through lookup128 with the identity table {0..15}: vector q lane l is the code of byte B = 4l + q/2 of the
// half, low nibble for even q, so element 64 (l / 8) + 4 (l % 8) + q / 2 + 32 (q & 1) of sub-block
// 4h + 2 (l / 8) + (q & 1) (XOrder::Q4K). The 8 scales and 8 minimums of the super-block are unpacked in one
// vector (lanes 0-7 d * sc, lanes 8-15 dmin * m), and each half takes its even / odd vectors' scale and
// minimum by permutes. One token sums codes times x per parity and applies the scales and the minimums
// (times the sums of x) once per half, as llama.cpp's q4_K dot does; the tile path decodes q * s - m.
struct DecQ4_Kx256 {
  static constexpr int kChunk = 256;
  const KernelArgs& a;
  __m512 iota = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  explicit DecQ4_Kx256(const KernelArgs& args) : a(args) {}
  // lanes 0-7: d * sc[j], lanes 8-15: dmin * m[j] (quant_detail::q4_k_scale_min for all j at once).
  static __m512 scales_mins(const uint8_t* blk) {
    const __m512i b = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 4)));
    const __m512i P = _mm512_permutexvar_epi32(_mm512_setr_epi32(0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 8, 9, 10, 11), b);
    const __m512i Q = _mm512_permutexvar_epi32(_mm512_setr_epi32(0, 0, 0, 0, 0, 1, 2, 3, 0, 0, 0, 0, 4, 5, 6, 7), b);
    const __m512i lo6 = _mm512_and_si512(P, _mm512_set1_epi32(63));
    const __m512i hi = _mm512_or_si512(
        _mm512_and_si512(_mm512_srlv_epi32(P, _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 4, 4, 4)),
                         _mm512_set1_epi32(15)),
        _mm512_slli_epi32(_mm512_srli_epi32(Q, 6), 4));
    const __m512i v = _mm512_mask_mov_epi32(lo6, 0xF0F0, hi);
    const __m512 dd = _mm512_insertf32x8(_mm512_set1_ps(block_half(blk)), _mm256_set1_ps(block_half(blk + 2)), 1);
    return _mm512_mul_ps(_mm512_cvtepi32_ps(v), dd);
  }
  // Scale (M = false) or minimum (M = true) vector of half h's even (P = 0) or odd (P = 1) code vectors:
  // lanes 0-7 sub-block 4h + P, lanes 8-15 sub-block 4h + 2 + P.
  template <bool M, int P>
  static __m512 pick(__m512 sm, int h) {
    const int b = (M ? 8 : 0) + 4 * h + P;
    return _mm512_permutexvar_ps(_mm512_inserti64x4(_mm512_set1_epi32(b), _mm256_set1_epi32(b + 2), 1), sm);
  }
  // Tile path: the super-block's 256 weights q * s - m, in kernel order.
  void at(int64_t r, int64_t k, __m512* w) const {
    const uint8_t* blk = q4_k_block(a, r, k);
    const __m512 sm = scales_mins(blk);
    for (int h = 0; h < 2; ++h) {
      __m512* wh = w + 8 * h;
      lookup128(blk + 16 + 64 * h, iota, wh);
      const __m512 s0 = pick<false, 0>(sm, h), s1 = pick<false, 1>(sm, h);
      const __m512 m0 = pick<true, 0>(sm, h), m1 = pick<true, 1>(sm, h);
      for (int q = 0; q < 8; q += 2) {
        wh[q] = _mm512_fmsub_ps(wh[q], s0, m0);
        wh[q + 1] = _mm512_fmsub_ps(wh[q + 1], s1, m1);
      }
    }
  }
  // One token. x_sums: the sums of the chunk's even and odd x vectors per half (row-independent, made once
  // per chunk for all rows); dot: the super-block's dot with x (xv: its 16 x vectors in kernel order),
  // still lane-wise.
  static void x_sums(const __m512* xv, __m512* xs) {
    for (int h = 0; h < 2; ++h) {
      const __m512* x = xv + 8 * h;
      __m512 xe = x[0], xo = x[1];
      for (int q = 2; q < 8; q += 2) {
        xe = _mm512_add_ps(xe, x[q]);
        xo = _mm512_add_ps(xo, x[q + 1]);
      }
      xs[2 * h] = xe;
      xs[2 * h + 1] = xo;
    }
  }
  __m512 dot(int64_t r, int64_t k, const __m512* xv, const __m512* xs) const {
    const uint8_t* blk = q4_k_block(a, r, k);
    const __m512 sm = scales_mins(blk);
    __m512 acc = _mm512_setzero_ps();
    for (int h = 0; h < 2; ++h) {
      __m512 c[8];
      lookup128(blk + 16 + 64 * h, iota, c);
      const __m512* x = xv + 8 * h;
      __m512 ce = _mm512_mul_ps(c[0], x[0]), co = _mm512_mul_ps(c[1], x[1]);
      for (int q = 2; q < 8; q += 2) {
        ce = _mm512_fmadd_ps(c[q], x[q], ce);
        co = _mm512_fmadd_ps(c[q + 1], x[q + 1], co);
      }
      acc = _mm512_fmadd_ps(ce, pick<false, 0>(sm, h), acc);
      acc = _mm512_fmadd_ps(co, pick<false, 1>(sm, h), acc);
      acc = _mm512_fnmadd_ps(xs[2 * h], pick<true, 0>(sm, h), acc);
      acc = _mm512_fnmadd_ps(xs[2 * h + 1], pick<true, 1>(sm, h), acc);
    }
    return acc;
  }
};

// Tile path: weights [k0, k0 + kn) of row r into out (kernel order).
template <class D>
void decode_tile(const KernelArgs& a, int64_t r, int64_t k0, int64_t kn, float* out) {
  const D d(a);
  for (int64_t k = k0; k < k0 + kn; k += D::kChunk, out += D::kChunk) {
    __m512 w[D::kChunk / 16];
    if constexpr (requires { d.scale(r, k); }) {  // block-scaled table decoders: values times the scales
      d.codes(r, k, w);
      const __m512 s = d.scale(r, k);
      for (int v = 0; v < D::kChunk / 16; ++v) w[v] = _mm512_mul_ps(w[v], s);
    } else {
      d.at(r, k, w);
    }
    for (int v = 0; v < D::kChunk / 16; ++v) _mm512_storeu_ps(out + 16 * v, w[v]);
  }
}

// The decoder of a's format, handed to f as DecoderTag<D>: one table for the tile path (decoder_for) and
// the one-token path (gemv_for). R{} when the format has no decoder here.
template <class D>
struct DecoderTag {
  using type = D;
};
template <class R, class F>
R with_decoder(const KernelArgs& a, F f) {
  switch (a.format) {
    case QuantFormat::NF4: case QuantFormat::FP4: return a.wide ? f(DecoderTag<DecBnb4x128>{}) : f(DecoderTag<DecBnb4>{});
    case QuantFormat::NVFP4: return a.wide ? f(DecoderTag<DecE2m1x128<false>>{}) : f(DecoderTag<DecE2m1>{});
    case QuantFormat::MXFP4: return a.wide ? f(DecoderTag<DecE2m1x128<true>>{}) : f(DecoderTag<DecE2m1>{});
    case QuantFormat::INT8: return f(DecoderTag<DecInt8>{});
    case QuantFormat::FP8_E4M3: return f(DecoderTag<DecFp8<true>>{});
    case QuantFormat::FP8_E5M2: return f(DecoderTag<DecFp8<false>>{});
    case QuantFormat::Q4_0: return f(DecoderTag<DecQ4_0>{});
    case QuantFormat::Q8_0: return f(DecoderTag<DecQ8_0>{});
    case QuantFormat::Q5_0: return f(DecoderTag<DecQ5_0T<false>>{});
    case QuantFormat::Q4_1: return f(DecoderTag<DecQ4_0T<true>>{});
    case QuantFormat::Q5_1: return f(DecoderTag<DecQ5_0T<true>>{});
    case QuantFormat::Q5_K: return f(DecoderTag<DecQxK<true>>{});
    case QuantFormat::Q2_K: return f(DecoderTag<DecQ23K<false>>{});
    case QuantFormat::Q3_K: return f(DecoderTag<DecQ23K<true>>{});
    case QuantFormat::Q6_K: return a.wide ? f(DecoderTag<DecQ6_Kx256>{}) : R{};  // rows are whole super-blocks: always wide
    case QuantFormat::Q4_K: return a.wide ? f(DecoderTag<DecQ4_Kx256>{}) : f(DecoderTag<DecQ4_K>{});
    default: return R{};
  }
}

using DecodeFn = void (*)(const KernelArgs&, int64_t, int64_t, int64_t, float*);
DecodeFn decoder_for(const KernelArgs& a) {
  return with_decoder<DecodeFn>(a, [](auto t) -> DecodeFn { return decode_tile<typename decltype(t)::type>; });
}

// acc[t * R + i] += dot(tile row i [0, kn), x token t [0, kn)) for R rows x T tokens (kn % 16 == 0).
template <int R, int T>
inline void micro(const float* tile, int64_t kn, const float* x, int64_t ldk, float* y, int64_t ldy) {
  __m512 acc[R][T];
  for (int i = 0; i < R; ++i)
    for (int t = 0; t < T; ++t) acc[i][t] = _mm512_setzero_ps();
  for (int64_t k = 0; k < kn; k += 16) {
    __m512 xv[T];
    for (int t = 0; t < T; ++t) xv[t] = _mm512_loadu_ps(x + t * ldk + k);
    for (int i = 0; i < R; ++i) {
      const __m512 w = _mm512_load_ps(tile + i * kSeg + k);
      for (int t = 0; t < T; ++t) acc[i][t] = _mm512_fmadd_ps(w, xv[t], acc[i][t]);
    }
  }
  for (int i = 0; i < R; ++i)
    for (int t = 0; t < T; ++t) y[t * ldy + i] += hsum512(acc[i][t]);
}

template <int R>
void micro_tokens(const float* tile, int64_t kn, const float* x, int64_t ldk, int64_t nt, float* y, int64_t ldy) {
  int64_t t = 0;
  for (; t + 4 <= nt; t += 4) micro<R, 4>(tile, kn, x + t * ldk, ldk, y + t * ldy, ldy);
  for (; t < nt; ++t) micro<R, 1>(tile, kn, x + t * ldk, ldk, y + t * ldy, ldy);
}

void float_rows(const KernelArgs& a, DecodeFn dec, int64_t r0, int64_t r1) {
  alignas(64) float tile[kRowBlock * kSeg];
  const int64_t N = a.rows, nt = a.n_tokens;
  for (int64_t rb = r0; rb < r1; rb += kRowBlock) {
    const int nr = int(r1 - rb < kRowBlock ? r1 - rb : kRowBlock);
    for (int64_t t = 0; t < nt; ++t)
      for (int i = 0; i < nr; ++i) a.y[t * N + rb + i] = 0.0f;
    for (int64_t k0 = 0; k0 < a.k_main; k0 += kSeg) {
      const int64_t kn = a.k_main - k0 < kSeg ? a.k_main - k0 : kSeg;
      // Prefetch the next row block's codes for this segment: decode is not bound by DRAM, so the
      // hardware prefetcher alone leaves the memory idle between rows (decode 1.8x on q4_0).
      if (rb + kRowBlock < r1) prefetch_rows(a, rb + kRowBlock, kRowBlock, k0, kn);
      for (int i = 0; i < nr; ++i) dec(a, rb + i, k0, kn, tile + i * kSeg);
      const float* x = a.xk + k0;
      float* y = a.y + rb;
      switch (nr) {
        case 4: micro_tokens<4>(tile, kn, x, a.ldk, nt, y, N); break;
        case 3: micro_tokens<3>(tile, kn, x, a.ldk, nt, y, N); break;
        case 2: micro_tokens<2>(tile, kn, x, a.ldk, nt, y, N); break;
        default: micro_tokens<1>(tile, kn, x, a.ldk, nt, y, N); break;
      }
    }
    for (int i = 0; i < nr; ++i) {
      const float m = row_mult(a, rb + i);
      if (m != 1.0f)
        for (int64_t t = 0; t < nt; ++t) a.y[t * N + rb + i] *= m;
    }
  }
}

// One token (decode): R rows at a time, each group of 32 weights decoded straight into FMAs against the
// shared x vectors (no L1 tile: the tile path's store and reload of every decoded weight cost ~30% of a
// 4-bit GEMV). The next group's codes are prefetched a 1024-column segment at a time, as float_rows does.
template <class D, int R>
void gemv_group(const KernelArgs& a, const D& d, int64_t r, int64_t r_next) {
  constexpr int V = D::kChunk / 16;  // vectors per chunk
  __m512 acc0[R], acc1[R];
  for (int i = 0; i < R; ++i) acc0[i] = acc1[i] = _mm512_setzero_ps();
  for (int64_t k = 0; k < a.k_main; k += D::kChunk) {
    if (k % kSeg == 0 && r_next >= 0) prefetch_rows(a, r_next, R, k, a.k_main - k < kSeg ? a.k_main - k : kSeg);
    __m512 xv[V];
    for (int v = 0; v < V; ++v) xv[v] = _mm512_loadu_ps(a.xk + k + 16 * v);
    [[maybe_unused]] __m512 xs[4];
    if constexpr (requires { D::x_sums(xv, xs); }) D::x_sums(xv, xs);  // shared by the R rows
    for (int i = 0; i < R; ++i) {
      __m512 w[V];
      if constexpr (requires { d.dot(r, k, xv, xs); }) {  // decoders with their own chunk dot (q4_k)
        acc0[i] = _mm512_add_ps(acc0[i], d.dot(r + i, k, xv, xs));
      } else if constexpr (requires { d.scale(r, k); }) {
        // Block-scaled tables (128-weight chunks): the chunk's dot on the unscaled values, then one FMA
        // with the scale vector instead of a multiply per weight vector.
        d.codes(r + i, k, w);
        __m512 c0 = _mm512_mul_ps(w[0], xv[0]), c1 = _mm512_mul_ps(w[1], xv[1]);
        for (int v = 2; v < V; v += 2) {
          c0 = _mm512_fmadd_ps(w[v], xv[v], c0);
          c1 = _mm512_fmadd_ps(w[v + 1], xv[v + 1], c1);
        }
        acc0[i] = _mm512_fmadd_ps(_mm512_add_ps(c0, c1), d.scale(r + i, k), acc0[i]);
      } else {
        d.at(r + i, k, w);
        for (int v = 0; v < V; v += 2) {
          acc0[i] = _mm512_fmadd_ps(w[v], xv[v], acc0[i]);
          acc1[i] = _mm512_fmadd_ps(w[v + 1], xv[v + 1], acc1[i]);
        }
      }
    }
  }
  for (int i = 0; i < R; ++i) a.y[r + i] = hsum512(_mm512_add_ps(acc0[i], acc1[i])) * row_mult(a, r + i);
}

template <class D>
void gemv_rows(const KernelArgs& a, int64_t r0, int64_t r1) {
  const D d(a);
  int64_t r = r0;
  for (; r + kRowBlock <= r1; r += kRowBlock) {
    const int64_t next = r + 2 * kRowBlock <= r1 ? r + kRowBlock : -1;
    gemv_group<D, kRowBlock>(a, d, r, next);
  }
  for (; r < r1; ++r) gemv_group<D, 1>(a, d, r, -1);
}

using GemvFn = void (*)(const KernelArgs&, int64_t, int64_t);
GemvFn gemv_for(const KernelArgs& a) {
  return with_decoder<GemvFn>(a, [](auto t) -> GemvFn { return gemv_rows<typename decltype(t)::type>; });
}

// ---- int4 (GPTQ storage, qweight [K/8, N]): 16 output rows per vector, outer products over k ----
template <int T>
void int4_block(const KernelArgs& a, int64_t n0, int64_t t0) {
  const int64_t N = a.rows, K = a.cols, g = a.block, Nw = (N + 7) / 8, Kw = (K + 7) / 8;
  const uint32_t* qw = reinterpret_cast<const uint32_t*>(a.data);
  const uint16_t* sc = reinterpret_cast<const uint16_t*>(a.scales);
  const __m512i shifts = _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 0, 4, 8, 12, 16, 20, 24, 28);
  const __m512i widx = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
  const __m512i m15 = _mm512_set1_epi32(15);
  __m512 acc[T];
  for (int t = 0; t < T; ++t) acc[t] = _mm512_setzero_ps();
  const float* x = a.xk + t0 * a.ldk;
  for (int64_t k0 = 0; k0 < Kw * 8; k0 += g) {
    const int64_t gi = k0 / g;
    const __m512 s = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(sc + gi * N + n0)));
    const __m512i zw = _mm512_castsi128_si512(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(a.zeros + gi * Nw + n0 / 8)));
    const __m512 z = _mm512_cvtepi32_ps(_mm512_and_si512(_mm512_srlv_epi32(_mm512_permutexvar_epi32(widx, zw), shifts), m15));
    __m512 ag[T];
    for (int t = 0; t < T; ++t) ag[t] = _mm512_setzero_ps();
    const int64_t kend = k0 + g < Kw * 8 ? k0 + g : Kw * 8;
    for (int64_t k = k0; k < kend; k += 8) {
      const __m512i q = _mm512_loadu_si512(qw + (k / 8) * N + n0);
      for (int j = 0; j < 8; ++j) {
        const __m512 w = _mm512_sub_ps(
            _mm512_cvtepi32_ps(_mm512_and_si512(_mm512_srli_epi32(q, unsigned(4 * j)), m15)), z);
        for (int t = 0; t < T; ++t) ag[t] = _mm512_fmadd_ps(w, _mm512_set1_ps(x[t * a.ldk + k + j]), ag[t]);
      }
    }
    for (int t = 0; t < T; ++t) acc[t] = _mm512_fmadd_ps(ag[t], s, acc[t]);
  }
  for (int t = 0; t < T; ++t) _mm512_storeu_ps(a.y + (t0 + t) * N + n0, acc[t]);
}

void int4_rows(const KernelArgs& a, int64_t r0, int64_t r1) {
  for (int64_t n0 = r0; n0 + 16 <= r1; n0 += 16) {
    int64_t t = 0;
    for (; t + 4 <= a.n_tokens; t += 4) int4_block<4>(a, n0, t);
    for (; t < a.n_tokens; ++t) int4_block<1>(a, n0, t);
  }
}

// ---- integer path: q4_0 / q8_0 weights x int8 activations (vpdpbusd) ----
// Activations as described at KernelArgs::xq. Per block: d_w (d_x (sum of u8 w' * x) - offset d_x sum x),
// with w' = q (q4_0, offset 8) or w + 128 (q8_0, offset 128). R rows run together: each activation block
// pair (64 int8, its d_x and correction) is loaded once for the R rows; everything stays in registers
// (one f32 accumulator per row, the block scales applied per pair with two FMAs), and the bytes of the
// next row group are prefetched while this one streams (the hardware prefetcher alone left DRAM idle).
// One zmm holds two blocks A, B: q8_0 lanes 0-7 are A, 8-15 B; q4_0 (low nibbles of A|B, then high
// nibbles of A|B) lanes 0-3, 8-11 are A and 4-7, 12-15 are B.
inline __m512 pair_vec(const float* p, __m512i idx) {
  return _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(_mm_castpd_ps(_mm_load_sd(reinterpret_cast<const double*>(p)))));
}

inline uint16_t load_u16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return h;
}

// Integer dot of one block (natural order) with its activations, in 8 int32 lanes.
template <bool Q4>
inline __m256i block_dot(const uint8_t* blk, const int8_t* xq) {
  __m256i w;
  if constexpr (Q4) {
    const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 2));
    w = _mm256_and_si256(_mm256_inserti128_si256(_mm256_castsi128_si256(q), _mm_srli_epi16(q, 4), 1),
                         _mm256_set1_epi8(15));
  } else {
    w = _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2)), _mm256_set1_epi8(int8_t(0x80)));
  }
  return _mm256_dpbusd_epi32(_mm256_setzero_si256(), w, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq)));
}

template <bool Q4, int R>
void int_group(const KernelArgs& a, int64_t r, int64_t t, bool prefetch_next) {
  constexpr int64_t bytes = Q4 ? 18 : 34;
  const int64_t nb = a.cols / 32, row_bytes = nb * bytes;
  const IntGroupIn in(a, r, t, row_bytes, R);
  const uint8_t* row = in.row;
  const char* pf = in.pf;  // next group, streamed ahead
  const int8_t* xq = in.xq;
  const float *dx = in.dx, *xs = in.xs;
  const __m512i idx = Q4 ? _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1)
                         : _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
  constexpr __mmask16 kB = Q4 ? 0xF0F0 : 0xFF00;
  // offset * d_x * sum(x) spread over the block's 8 lanes.
  const __m512 off = _mm512_set1_ps(Q4 ? 1.0f : 16.0f);
  const __m512i m4 = _mm512_set1_epi8(15);
  const __m512i flip = _mm512_set1_epi8(int8_t(0x80));
  __m512 acc[R];
  for (int i = 0; i < R; ++i) acc[i] = _mm512_setzero_ps();
  int64_t b = 0;
  for (; b + 2 <= nb; b += 2) {
    // Next group into L2 (prefetcht1: measured 5-15 % above t0, which holds an L1 fill buffer per line).
    if (prefetch_next)
      for (int64_t o = 0; o < R * 2 * bytes; o += 64) _mm_prefetch(pf + b * R * bytes + o, _MM_HINT_T1);
    const __m512i xv = _mm512_loadu_si512(xq + b * 32);
    const __m512 sx = pair_vec(dx + b, idx);
    const __m512 cx = _mm512_mul_ps(pair_vec(xs + b, idx), off);
    for (int i = 0; i < R; ++i) {
      const uint8_t* A = row + i * row_bytes + b * bytes;
      const uint8_t* B = A + bytes;
      __m512i w;
      if constexpr (Q4) {
        const __m256i ab = _mm256_inserti128_si256(
            _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(A + 2))),
            _mm_loadu_si128(reinterpret_cast<const __m128i*>(B + 2)), 1);
        w = _mm512_and_si512(_mm512_inserti64x4(_mm512_castsi256_si512(ab), _mm256_srli_epi16(ab, 4), 1), m4);
      } else {
        w = _mm512_xor_si512(
            _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(A + 2))),
                               _mm256_loadu_si256(reinterpret_cast<const __m256i*>(B + 2)), 1),
            flip);
      }
      const __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), w, xv);
      const __m512 dw = _mm512_cvtph_ps(
          _mm256_mask_set1_epi16(_mm256_set1_epi16(int16_t(load_u16(A))), kB, int16_t(load_u16(B))));
      acc[i] = _mm512_fmadd_ps(_mm512_fmsub_ps(_mm512_cvtepi32_ps(dot), sx, cx), dw, acc[i]);
    }
  }
  float tail[R] = {};
  if (b < nb) {  // odd block count: the last block in natural order
    const float sx = dx[b], cx = xs[b] * (Q4 ? 8.0f : 128.0f);
    for (int i = 0; i < R; ++i) {
      const uint8_t* A = row + i * row_bytes + b * bytes;
      const __m256i d8 = block_dot<Q4>(A, xq + b * 32);
      const __m128i d4 = _mm_add_epi32(_mm256_castsi256_si128(d8), _mm256_extracti128_si256(d8, 1));
      const __m128i d2 = _mm_add_epi32(d4, _mm_shuffle_epi32(d4, 0x4E));
      const int32_t d1 = _mm_cvtsi128_si32(_mm_add_epi32(d2, _mm_shuffle_epi32(d2, 0xB1)));
      tail[i] = half_to_float(load_u16(A)) * (float(d1) * sx - cx);
    }
  }
  for (int i = 0; i < R; ++i) a.y[t * a.rows + r + i] = hsum512(acc[i]) + tail[i];
}

// q4_k and, with Q5, q5_k x int8 activations (plain order): a super-block's 64-weight group g is 32 code bytes
// whose low nibbles are sub-block 2g and high nibbles sub-block 2g + 1, so one zmm of codes meets the group's 64
// activations as they come (lanes 0-7: sub-block 2g, 8-15: 2g + 1); q5_k adds bit 2g (2g + 1) of qh[l] as the
// codes' fifth bit. Per sub-block j: d sc_j (d_x sum q x) - dmin m_j (d_x sum x); the minimum terms of a
// super-block in one fnmadd per row (lanes 8-15 of the scales / mins vector times the 8 activation sums).
template <bool Q5, int R>
void q4k_int_group(const KernelArgs& a, int64_t r, int64_t t, bool prefetch_next) {
  constexpr int64_t bytes = Q5 ? sizeof(quant_detail::BlockQ5_K) : sizeof(quant_detail::BlockQ4_K);
  constexpr int64_t qs_at = Q5 ? offsetof(quant_detail::BlockQ5_K, qs) : offsetof(quant_detail::BlockQ4_K, qs);
  const int64_t ns = a.cols / 256, row_bytes = ns * bytes;
  const IntGroupIn in(a, r, t, row_bytes, R);
  const uint8_t* row = in.row;
  const char* pf = in.pf;
  const int8_t* xq = in.xq;
  const float *dx = in.dx, *xs = in.xs;
  const __m512i idx = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
  const __m512i m4 = _mm512_set1_epi8(15);
  __m512 acc[R];
  for (int i = 0; i < R; ++i) acc[i] = _mm512_setzero_ps();
  for (int64_t sb = 0; sb < ns; ++sb) {
    if (prefetch_next)
      for (int64_t o = 0; o < R * bytes; o += 64) _mm_prefetch(pf + sb * R * bytes + o, _MM_HINT_T1);
    // The minimum term of the whole super-block at once: lanes 8-15 of the scales / mins vector (dmin m[j]) times
    // the activation sums of sub-blocks 0-7; lanes 0-7 meet zeros.
    const __m512 xs8 = _mm512_insertf32x8(_mm512_setzero_ps(), _mm256_loadu_ps(xs + sb * 8), 1);
    __m512 sm[R];  // lanes 0-7: d sc[j]; 8-15: dmin m[j]
    for (int i = 0; i < R; ++i) {
      sm[i] = DecQ4_Kx256::scales_mins(row + i * row_bytes + sb * bytes);
      acc[i] = _mm512_fnmadd_ps(sm[i], xs8, acc[i]);
    }
    for (int g = 0; g < 4; ++g) {
      const int64_t b = sb * 8 + 2 * g;  // activation block of sub-block 2g
      const __m512i xv = _mm512_loadu_si512(xq + b * 32);
      const __m512 sx = pair_vec(dx + b, idx);
      const __m512i si = _mm512_setr_epi32(2 * g, 2 * g, 2 * g, 2 * g, 2 * g, 2 * g, 2 * g, 2 * g, 2 * g + 1, 2 * g + 1,
                                           2 * g + 1, 2 * g + 1, 2 * g + 1, 2 * g + 1, 2 * g + 1, 2 * g + 1);
      for (int i = 0; i < R; ++i) {
        const uint8_t* blk = row + i * row_bytes + sb * bytes;
        const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + qs_at + 32 * g));
        __m512i w = _mm512_and_si512(_mm512_inserti64x4(_mm512_castsi256_si512(q), _mm256_srli_epi16(q, 4), 1), m4);
        if constexpr (Q5) {
          const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + offsetof(quant_detail::BlockQ5_K, qh)));
          const __m512i hb = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_srli_epi16(h, 2 * g)),
                                                _mm256_srli_epi16(h, 2 * g + 1), 1);
          w = _mm512_or_si512(w, _mm512_slli_epi16(_mm512_and_si512(hb, _mm512_set1_epi8(1)), 4));
        }
        const __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), w, xv);
        acc[i] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(dot), sx), _mm512_permutexvar_ps(si, sm[i]), acc[i]);
      }
    }
  }
  for (int i = 0; i < R; ++i) a.y[t * a.rows + r + i] = hsum512(acc[i]);
}

// q6_k and, with Q3, q3_k x int8 activations (plain order). 64 weights at a time become a zmm of code bytes in
// which each dword lane holds 4 codes of one 16-weight sub-block:
// - q6_k (codes 0..63, offset 32): half v / 2, quarters 2 (v % 2) and 2 (v % 2) + 1: low nibbles of ql (high
//   nibbles for quarters 2-3), two bits of qh;
// - q3_k (codes 0..7, offset 4): the same quarters' bit pairs of the half's 32 qs bytes, the third bit from
//   hmask (bit 4 h + quarter).
// The offset comes off in int32 with offset times the lane's activation sum (one vpdpbusd with ones per 64
// activations, shared by the rows); then per lane d sc_j d_x, d_x of the lane's 32-activation block.
template <bool Q3, int R>
void k36_int_group(const KernelArgs& a, int64_t r, int64_t t, bool prefetch_next) {
  constexpr int64_t bytes = Q3 ? sizeof(quant_detail::BlockQ3_K) : sizeof(quant_detail::BlockQ6_K);
  const int64_t ns = a.cols / 256, row_bytes = ns * bytes;
  const IntGroupIn in(a, r, t, row_bytes, R);
  const uint8_t* row = in.row;
  const char* pf = in.pf;
  const int8_t* xq = in.xq;
  const float* dx = in.dx;
  const __m512i pair = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
  const __m512i m4 = _mm512_set1_epi8(15), m30 = _mm512_set1_epi8(0x30), ones = _mm512_set1_epi8(1);
  const __m512i m3 = _mm512_set1_epi8(3);
  // q3_k scale unpacking: sub-block s takes bits 4 (s / 8) of byte s % 8 and bits 2 (s / 4) of byte 8 + s % 4.
  const __m512i q3_lo_idx = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3, 4, 5, 6, 7);
  const __m512i q3_lo_sh = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 4, 4, 4, 4, 4, 4, 4, 4);
  const __m512i q3_hi_idx = _mm512_setr_epi32(8, 9, 10, 11, 8, 9, 10, 11, 8, 9, 10, 11, 8, 9, 10, 11);
  const __m512i q3_hi_sh = _mm512_setr_epi32(0, 0, 0, 0, 2, 2, 2, 2, 4, 4, 4, 4, 6, 6, 6, 6);
  const __m512i m15d = _mm512_set1_epi32(15), m3d = _mm512_set1_epi32(3);
  const __m512i sh01 = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(2), 1);  // << 4 | << 2
  const __m512i sh23 = _mm512_inserti64x4(_mm512_set1_epi16(0), _mm256_set1_epi16(2), 1);  // >> 0 | >> 2
  __m512 acc[R];
  for (int i = 0; i < R; ++i) acc[i] = _mm512_setzero_ps();
  for (int64_t sb = 0; sb < ns; ++sb) {
    if (prefetch_next)
      for (int64_t o = 0; o < R * bytes; o += 64) _mm_prefetch(pf + sb * R * bytes + o, _MM_HINT_T1);
    __m512 sc[R];  // d * scale of sub-block j, j = 0..15
    for (int i = 0; i < R; ++i) {
      const uint8_t* blk = row + i * row_bytes + sb * bytes;
      if constexpr (Q3) {  // quant_detail::q3_k_scale for all 16 sub-blocks at once
        uint8_t s12[16] = {};
        std::memcpy(s12, blk + offsetof(quant_detail::BlockQ3_K, scales), 12);
        const __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s12)));
        const __m512i lo = _mm512_and_si512(_mm512_srlv_epi32(_mm512_permutexvar_epi32(q3_lo_idx, v), q3_lo_sh), m15d);
        const __m512i hi = _mm512_and_si512(_mm512_srlv_epi32(_mm512_permutexvar_epi32(q3_hi_idx, v), q3_hi_sh), m3d);
        const __m512i s6 = _mm512_sub_epi32(_mm512_or_si512(lo, _mm512_slli_epi32(hi, 4)), _mm512_set1_epi32(32));
        sc[i] = _mm512_mul_ps(_mm512_set1_ps(block_half(blk + offsetof(quant_detail::BlockQ3_K, d))), _mm512_cvtepi32_ps(s6));
      } else {
        sc[i] = DecQ6_Kx256::scale_vec(blk);
      }
    }
    for (int v = 0; v < 4; ++v) {  // 64 weights: half v / 2, quarters 2 (v % 2), 2 (v % 2) + 1
      const int64_t b = sb * 8 + 2 * v;  // activation block of the first 32
      const int h = v / 2;
      const __m512i xv = _mm512_loadu_si512(xq + b * 32);
      const __m512i xoff = _mm512_slli_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), ones, xv), Q3 ? 2 : 5);
      const __m512 sx = pair_vec(dx + b, pair);
      const int j0 = 4 * v;  // sub-block of lane 0; lane l: j0 + l / 4
      const __m512i si = _mm512_add_epi32(_mm512_set1_epi32(j0), _mm512_srli_epi32(
                                              _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), 2));
      [[maybe_unused]] __m512i qsh, hsh;  // q3_k: per-half shift counts of the two quarters
      if constexpr (Q3) {
        const int q0 = 2 * (v % 2);
        qsh = _mm512_inserti64x4(_mm512_set1_epi16(int16_t(2 * q0)), _mm256_set1_epi16(int16_t(2 * q0 + 2)), 1);
        hsh = _mm512_inserti64x4(_mm512_set1_epi16(int16_t(4 * h + q0)), _mm256_set1_epi16(int16_t(4 * h + q0 + 1)), 1);
      }
      for (int i = 0; i < R; ++i) {
        const uint8_t* blk = row + i * row_bytes + sb * bytes;
        __m512i codes;
        if constexpr (Q3) {
          const __m512i q = _mm512_broadcast_i64x4(
              _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + offsetof(quant_detail::BlockQ3_K, qs) + 32 * h)));
          const __m512i hm = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk)));
          codes = _mm512_or_si512(_mm512_and_si512(_mm512_srlv_epi16(q, qsh), m3),
                                  _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(hm, hsh), ones), 2));
        } else {
          const __m512i ql = _mm512_loadu_si512(blk + 64 * h);
          const __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 128 + 32 * h)));
          codes = (v & 1) ? _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m4),
                                            _mm512_and_si512(_mm512_srlv_epi16(qh, sh23), m30))
                          : _mm512_or_si512(_mm512_and_si512(ql, m4), _mm512_and_si512(_mm512_sllv_epi16(qh, sh01), m30));
        }
        const __m512i dot = _mm512_sub_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), codes, xv), xoff);
        acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(_mm512_permutexvar_ps(si, sc[i]), sx), acc[i]);
      }
    }
  }
  for (int i = 0; i < R; ++i) a.y[t * a.rows + r + i] = hsum512(acc[i]);
}

template <int R>
struct Q4KIntGroup {
  static void run(const KernelArgs& a, int64_t r, int64_t t, bool p) { q4k_int_group<false, R>(a, r, t, p); }
};
template <int R>
struct Q5KIntGroup {
  static void run(const KernelArgs& a, int64_t r, int64_t t, bool p) { q4k_int_group<true, R>(a, r, t, p); }
};
template <int R>
struct Q6KIntGroup {
  static void run(const KernelArgs& a, int64_t r, int64_t t, bool p) { k36_int_group<false, R>(a, r, t, p); }
};
// q4_1 / q5_0 / q5_1 x int8 activations: two 32-weight blocks per zmm (lanes 0-7 block b, 8-15 block b + 1), the
// codes unsigned in natural order (low nibbles are elements 0-15, high 16-31; q5: bit j of qh as the fifth bit);
// per block d (d_x sum q x) + c (d_x sum x), c = m (q4_1, q5_1) or -16 d (q5_0), the second term in scalar.
template <QuantFormat F, int R>
void legacy_int_group(const KernelArgs& a, int64_t r, int64_t t, bool prefetch_next) {
  using L = LegacyIntBlock<F>;
  using B = typename L::B;
  constexpr int64_t bytes = L::kBytes;
  const int64_t nb = a.cols / 32, row_bytes = nb * bytes;
  const IntGroupIn in(a, r, t, row_bytes, R);
  const __m256i m4 = _mm256_set1_epi8(15), b16 = _mm256_set1_epi8(16);
  // The 32 codes of one block as bytes.
  auto codes = [&](const uint8_t* blk) {
    const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + offsetof(B, qs)));
    __m256i c = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), m4);
    if constexpr (L::kQ5) {
      uint32_t h;
      std::memcpy(&h, blk + offsetof(B, qh), 4);
      c = _mm256_or_si256(c, _mm256_and_si256(_mm256_movm_epi8(__mmask32(h)), b16));
    }
    return c;
  };
  __m512 acc[R];
  float tail[R];
  for (int i = 0; i < R; ++i) acc[i] = _mm512_setzero_ps(), tail[i] = 0.0f;
  for (int64_t b = 0; b < nb; b += 2) {
    const bool two = b + 1 < nb;
    if (prefetch_next && b % 4 == 0)
      for (int64_t o = 0; o < 4 * R * bytes; o += 64) _mm_prefetch(in.pf + b * R * bytes + o, _MM_HINT_T1);
    const __m512i xv = two ? _mm512_loadu_si512(in.xq + b * 32)
                           : _mm512_zextsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(in.xq + b * 32)));
    const __m512 dxv = _mm512_insertf32x8(_mm512_set1_ps(in.dx[b]), _mm256_set1_ps(two ? in.dx[b + 1] : 0.0f), 1);
    for (int i = 0; i < R; ++i) {
      const uint8_t* b0 = in.row + i * row_bytes + b * bytes;
      const uint8_t* b1 = b0 + bytes;
      const __m512i w = _mm512_inserti64x4(_mm512_castsi256_si512(codes(b0)), two ? codes(b1) : _mm256_setzero_si256(), 1);
      const __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), w, xv);
      const float d0 = block_half(b0), d1 = two ? block_half(b1) : 0.0f;
      const __m512 dw = _mm512_insertf32x8(_mm512_set1_ps(d0), _mm256_set1_ps(d1), 1);
      acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(dw, dxv), acc[i]);
      tail[i] += L::offset(b0, d0, block_half) * in.xs[b] + (two ? L::offset(b1, d1, block_half) * in.xs[b + 1] : 0.0f);
    }
  }
  for (int i = 0; i < R; ++i) a.y[t * a.rows + r + i] = hsum512(acc[i]) + tail[i];
}

template <QuantFormat F>
struct LegacyIntGroup {
  template <int R>
  struct Rows {
    static void run(const KernelArgs& a, int64_t r, int64_t t, bool p) { legacy_int_group<F, R>(a, r, t, p); }
  };
};
template <int R>
struct Q3KIntGroup {
  static void run(const KernelArgs& a, int64_t r, int64_t t, bool p) { k36_int_group<true, R>(a, r, t, p); }
};
template <int R>
struct Q4_0IntGroup {
  static void run(const KernelArgs& a, int64_t r, int64_t t, bool p) { int_group<true, R>(a, r, t, p); }
};
template <int R>
struct Q8_0IntGroup {
  static void run(const KernelArgs& a, int64_t r, int64_t t, bool p) { int_group<false, R>(a, r, t, p); }
};

}  // namespace

void quantize_act_row_avx512(const float* x, int64_t K, bool pairs, int8_t* q, float* d, float* dsum) {
  const int64_t nb = K / 32;
  const __m512 sign = _mm512_set1_ps(-0.0f);
  for (int64_t b = 0; b < nb; ++b) {
    const __m512 x0 = _mm512_loadu_ps(x + b * 32), x1 = _mm512_loadu_ps(x + b * 32 + 16);
    const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_andnot_ps(sign, x0), _mm512_andnot_ps(sign, x1)));
    const float db = amax / 127.0f, id = db > 0.0f ? 1.0f / db : 0.0f;
    const __m512 iv = _mm512_set1_ps(id);
    const __m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(x0, iv)), q1 = _mm512_cvtps_epi32(_mm512_mul_ps(x1, iv));
    d[b] = act_block_scale(amax);
    dsum[b] = d[b] * float(_mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1)));
    const __m128i lo = _mm512_cvtsepi32_epi8(q0), hi = _mm512_cvtsepi32_epi8(q1);
    int8_t* dst = q + b * 32;
    if (pairs && b + 1 < nb + (b & 1)) {  // full pair: A0-15 B0-15 A16-31 B16-31
      dst = q + (b & ~int64_t(1)) * 32 + (b & 1) * 16;
      _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), lo);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 32), hi);
    } else {
      _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), lo);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 16), hi);
    }
  }
}

bool rows_avx512(const KernelArgs& a, int64_t r0, int64_t r1) {
  if (a.act == ActMode::Int8) {
    if (a.format == QuantFormat::Q4_0) int_rows_by<Q4_0IntGroup>(a, r0, r1);
    else if (a.format == QuantFormat::Q8_0) int_rows_by<Q8_0IntGroup>(a, r0, r1);
    else if (a.format == QuantFormat::Q4_K) int_rows_by<Q4KIntGroup>(a, r0, r1);
    else if (a.format == QuantFormat::Q5_K) int_rows_by<Q5KIntGroup>(a, r0, r1);
    else if (a.format == QuantFormat::Q6_K) int_rows_by<Q6KIntGroup>(a, r0, r1);
    else if (a.format == QuantFormat::Q3_K) int_rows_by<Q3KIntGroup>(a, r0, r1);
    else if (a.format == QuantFormat::Q4_1) int_rows_by<LegacyIntGroup<QuantFormat::Q4_1>::Rows>(a, r0, r1);
    else if (a.format == QuantFormat::Q5_0) int_rows_by<LegacyIntGroup<QuantFormat::Q5_0>::Rows>(a, r0, r1);
    else if (a.format == QuantFormat::Q5_1) int_rows_by<LegacyIntGroup<QuantFormat::Q5_1>::Rows>(a, r0, r1);
    else return false;
    return true;
  }
  if (a.format == QuantFormat::INT4) {
    int4_rows(a, r0, r1);
    return true;
  }
  if (a.n_tokens == 1) {
    if (GemvFn g = gemv_for(a)) {
      g(a, r0, r1);
      return true;
    }
  }
  DecodeFn dec = decoder_for(a);
  if (!dec) return false;
  float_rows(a, dec, r0, r1);
  return true;
}

}  // namespace qforge::cpu_quant

#pragma GCC diagnostic pop
#pragma GCC pop_options
