// src/backends/cpu/quant_linear_avx2.cpp — AVX2/FMA/F16C kernels of quant_linear_cpu (compiled with -mavx2
// -mfma -mf16c; only called when the CPU has them): per-format SIMD decoders of 32 weights (16-entry LUTs
// via two vpermps + blend, int8/fp8 via widening + F16C) into an L1 tile for a 2-row x 4-token / 4-row x
// 1-token FMA micro-kernel, or, for one token, straight into FMAs 2 rows at a time (gemv_rows); the int4
// GPTQ outer-product kernel (8 output rows per vector), and the q4_0/q8_0 x int8-activation decode kernel
// (maddubs/madd, rows in groups sharing activation loads).
#include <immintrin.h>

#include <cstring>

#include "backends/cpu/quant_linear_kernels.h"
#include "backends/quant_linear.h"
#include "quant/quant_codecs.h"

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
  for (int64_t t = 0; t < n_tokens; ++t) {
    const float* xt = x + t * ldx;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0;
    int64_t k = 0;
    for (; k + 16 <= len; k += 16) {
      a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + k), _mm256_loadu_ps(xt + k), a0);
      a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w + k + 8), _mm256_loadu_ps(xt + k + 8), a1);
    }
    for (; k + 8 <= len; k += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + k), _mm256_loadu_ps(xt + k), a0);
    float s = hsum(_mm256_add_ps(a0, a1));
    for (; k < len; ++k) s += w[k] * xt[k];
    acc[t] += s;
  }
}

}  // namespace qforge::cpu_detail

namespace qforge::cpu_quant {
namespace {

using cpu_detail::hsum;
constexpr int kRowBlock = 4;
constexpr int kSeg = 1024;

inline float bnb_absmax(const KernelArgs& a, int64_t b) {
  if (!a.double_quant) return reinterpret_cast<const float*>(a.scales)[b];
  const float t = a.dmap8[a.scales[b]] * a.scales2[b / 256];
  return t + a.offset;
}

inline float row_mult(const KernelArgs& a, int64_t r) {
  switch (a.format) {
    case QuantFormat::INT8: return reinterpret_cast<const float*>(a.scales)[r] * 7.874015718698502e-3f;
    case QuantFormat::FP8_E4M3: return reinterpret_cast<const float*>(a.scales)[a.per_channel ? r : 0] * 256.0f;
    case QuantFormat::FP8_E5M2: return reinterpret_cast<const float*>(a.scales)[a.per_channel ? r : 0];
    case QuantFormat::NVFP4: return a.scales2[0];
    default: return 1.0f;
  }
}

struct Lut16 {
  __m256 lo, hi;
  explicit Lut16(const float* t) : lo(_mm256_loadu_ps(t)), hi(_mm256_loadu_ps(t + 8)) {}
  __m256 operator()(__m256i idx) const {
    return _mm256_blendv_ps(_mm256_permutevar8x32_ps(lo, idx), _mm256_permutevar8x32_ps(hi, idx),
                            _mm256_castsi256_ps(_mm256_slli_epi32(idx, 28)));
  }
};

inline __m256i u8x8(const uint8_t* p) { return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))); }
inline __m256i i8x8(const uint8_t* p) { return _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))); }

// ---- decoders: 32 weights of row r at column k (k % 32 == 0), in kernel order, as four vectors ----
// Constructed once per call, inlined into the tile path (decode_tile) and the one-token path (gemv_rows).
struct DecBnb4 {
  static constexpr int kChunk = 32;  // weights per at() call
  const KernelArgs& a;
  Lut16 lut;
  __m256i m15 = _mm256_set1_epi32(15);
  int shift;  // log2(block) when the block is a power of two (bitsandbytes: 64), else -1 (a division)
  explicit DecBnb4(const KernelArgs& args) : a(args), lut(args.lut16) {
    shift = (a.block & (a.block - 1)) == 0 ? __builtin_ctz(unsigned(a.block)) : -1;
  }
  void at(int64_t r, int64_t k, __m256* w) const {
    const int64_t e = r * a.cols + k;
    const __m256 s = _mm256_set1_ps(bnb_absmax(a, shift >= 0 ? e >> shift : e / a.block));
    const uint8_t* p = a.data + e / 2;
    const __m256i v0 = u8x8(p), v1 = u8x8(p + 8);
    w[0] = _mm256_mul_ps(lut(_mm256_srli_epi32(v0, 4)), s);  // high nibble = even element
    w[1] = _mm256_mul_ps(lut(_mm256_srli_epi32(v1, 4)), s);
    w[2] = _mm256_mul_ps(lut(_mm256_and_si256(v0, m15)), s);
    w[3] = _mm256_mul_ps(lut(_mm256_and_si256(v1, m15)), s);
  }
};

struct DecE2m1 {
  static constexpr int kChunk = 32;  // weights per at() call
  const KernelArgs& a;
  Lut16 lut;
  __m256i m15 = _mm256_set1_epi32(15);
  bool nv;
  int64_t row_bytes, row_scales;
  explicit DecE2m1(const KernelArgs& args) : a(args), lut(args.lut16), nv(args.format == QuantFormat::NVFP4) {
    const int64_t Kp = nv ? (a.cols + 15) / 16 * 16 : (a.cols + 31) / 32 * 32;
    row_bytes = Kp / 2;
    row_scales = Kp / (nv ? 16 : 32);
  }
  void at(int64_t r, int64_t k, __m256* w) const {
    const uint8_t* sc = a.scales + r * row_scales;
    __m256 s0, s1;
    if (nv) {
      s0 = _mm256_set1_ps(a.e4m3[sc[k >> 4]]);
      s1 = _mm256_set1_ps(a.e4m3[sc[(k >> 4) + 1]]);
    } else {
      s0 = s1 = _mm256_set1_ps(e8m0_value(sc[k >> 5]));
    }
    const uint8_t* d = a.data + r * row_bytes + k / 2;
    const __m256i v0 = u8x8(d), v1 = u8x8(d + 8);
    w[0] = _mm256_mul_ps(lut(_mm256_and_si256(v0, m15)), s0);  // low nibble = even element
    w[1] = _mm256_mul_ps(lut(_mm256_and_si256(v1, m15)), s1);
    w[2] = _mm256_mul_ps(lut(_mm256_srli_epi32(v0, 4)), s0);
    w[3] = _mm256_mul_ps(lut(_mm256_srli_epi32(v1, 4)), s1);
  }
};

// Rows of whole 64-column chunks (KernelArgs::wide == 64): one 32-byte load holds 64 codes; dword lane j
// shifted right by 4q has the code of element 8j + (q ^ 1) (nf4/fp4) or 8j + q (nvfp4) in its low 4 bits,
// which is all the 16-entry lookup reads (vpermps: bits 0-2, the blend: bit 3): no widening, no mask. prepare()
// loads a chunk of row r, lookup(st, q) gives its vector q (8 weights), scaled.
inline __m256 lookup_shifted(__m256 lo, __m256 hi, __m256i v, int q) {
  auto lut = [&](__m256i idx) {  // Lut16 on the table halves lo / hi
    return _mm256_blendv_ps(_mm256_permutevar8x32_ps(lo, idx), _mm256_permutevar8x32_ps(hi, idx),
                            _mm256_castsi256_ps(_mm256_slli_epi32(idx, 28)));
  };
  switch (q) {  // shift counts must be immediates
    case 0: return lut(v);
    case 1: return lut(_mm256_srli_epi32(v, 4));
    case 2: return lut(_mm256_srli_epi32(v, 8));
    case 3: return lut(_mm256_srli_epi32(v, 12));
    case 4: return lut(_mm256_srli_epi32(v, 16));
    case 5: return lut(_mm256_srli_epi32(v, 20));
    case 6: return lut(_mm256_srli_epi32(v, 24));
    default: return lut(_mm256_srli_epi32(v, 28));
  }
}

// nf4 / fp4 (power-of-two block >= 64: a chunk lies in one block): the table scaled by the block's absmax.
struct DecBnb4x64 {
  static constexpr int kChunk = 64;
  const KernelArgs& a;
  const float* lut16;
  int shift;
  explicit DecBnb4x64(const KernelArgs& args)
      : a(args), lut16(args.lut16), shift(__builtin_ctz(unsigned(args.block))) {}
  struct State {
    __m256i v;
    __m256 lo, hi;  // the table halves times the absmax
  };
  State prepare(int64_t r, int64_t k) const {
    const int64_t e = r * a.cols + k;
    const __m256 s = _mm256_set1_ps(bnb_absmax(a, e >> shift));
    return {_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.data + e / 2)),
            _mm256_mul_ps(_mm256_loadu_ps(lut16), s), _mm256_mul_ps(_mm256_loadu_ps(lut16 + 8), s)};
  }
  __m256 lookup(const State& st, int q) const { return lookup_shifted(st.lo, st.hi, st.v, q); }
};

// nvfp4: lane j's block of 16 is j / 2; the chunk's 4 e4m3 block scales, each byte doubled, decode through
// F16C (value * 2^-8, exact; the 2^8 goes back here). mxfp4 (MX): lane j's block of 32 is j / 4, so lanes 0-3
// take the chunk's first e8m0 scale and lanes 4-7 its second.
template <bool MX>
struct DecE2m1x64 {
  static constexpr int kChunk = 64;
  const KernelArgs& a;
  Lut16 lut;
  explicit DecE2m1x64(const KernelArgs& args) : a(args), lut(args.lut16) {}
  struct State {
    __m256i v;
    __m256 s;
  };
  State prepare(int64_t r, int64_t k) const {
    const int64_t e = r * a.cols + k;
    __m256 s;
    if constexpr (MX) {
      const uint8_t* sc = a.scales + e / 32;
      s = _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_set1_ps(e8m0_value(sc[0]))), _mm_set1_ps(e8m0_value(sc[1])), 1);
    } else {
      int32_t sb;
      std::memcpy(&sb, a.scales + e / 16, 4);
      const __m128i b = _mm_cvtsi32_si128(sb);
      const __m128i h = _mm_and_si128(_mm_slli_epi16(_mm_cvtepi8_epi16(_mm_unpacklo_epi8(b, b)), 7),
                                      _mm_set1_epi16(int16_t(0xBFFF)));
      s = _mm256_mul_ps(_mm256_cvtph_ps(h), _mm256_set1_ps(256.0f));
    }
    return {_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.data + e / 2)), s};
  }
  __m256 lookup(const State& st, int q) const { return _mm256_mul_ps(lookup_shifted(lut.lo, lut.hi, st.v, q), st.s); }
};

struct DecInt8 {
  static constexpr int kChunk = 32;  // weights per at() call
  const KernelArgs& a;
  explicit DecInt8(const KernelArgs& args) : a(args) {}
  void at(int64_t r, int64_t k, __m256* w) const {
    const uint8_t* d = a.data + r * a.cols + k;
    for (int i = 0; i < 4; ++i) w[i] = _mm256_cvtepi32_ps(i8x8(d + 8 * i));
  }
};

template <bool E4M3>
struct DecFp8 {
  static constexpr int kChunk = 32;  // weights per at() call
  const KernelArgs& a;
  explicit DecFp8(const KernelArgs& args) : a(args) {}
  void at(int64_t r, int64_t k, __m256* w) const {
    const uint8_t* d = a.data + r * a.cols + k;
    for (int i = 0; i < 2; ++i) {
      const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(d + 16 * i));
      __m256i h;
      if constexpr (E4M3) {  // see quant_linear_avx512.cpp: e4m3 bits -> f16 of value * 2^-8
        h = _mm256_and_si256(_mm256_slli_epi16(_mm256_cvtepi8_epi16(b), 7), _mm256_set1_epi16(int16_t(0xBFFF)));
      } else {
        h = _mm256_slli_epi16(_mm256_cvtepu8_epi16(b), 8);
      }
      w[2 * i] = _mm256_cvtph_ps(_mm256_castsi256_si128(h));
      w[2 * i + 1] = _mm256_cvtph_ps(_mm256_extracti128_si256(h, 1));
    }
  }
};

inline float block_half(const uint8_t* blk) {
  uint16_t dh;
  std::memcpy(&dh, blk, 2);
  return _cvtsh_ss(dh);
}

// q4_0 (value (code - 8) d) and, with Min, q4_1 (value code d + m; f16 d and m lead the block).
template <bool Min>
struct DecQ4_0T {
  static constexpr int kChunk = 32;  // weights per at() call
  static constexpr int kBytes = Min ? 20 : 18, kCodes = Min ? 4 : 2;
  const KernelArgs& a;
  __m256i m15 = _mm256_set1_epi32(15), eight = _mm256_set1_epi32(Min ? 0 : 8);
  explicit DecQ4_0T(const KernelArgs& args) : a(args) {}
  void at(int64_t r, int64_t k, __m256* w) const {
    const uint8_t* blk = a.data + (r * (a.cols / 32) + k / 32) * kBytes;
    const __m256 s = _mm256_set1_ps(block_half(blk)), m = _mm256_set1_ps(Min ? block_half(blk + 2) : 0.0f);
    const __m256i v0 = u8x8(blk + kCodes), v1 = u8x8(blk + kCodes + 8);
    const __m256i q[4] = {_mm256_and_si256(v0, m15), _mm256_and_si256(v1, m15), _mm256_srli_epi32(v0, 4),
                          _mm256_srli_epi32(v1, 4)};
    for (int i = 0; i < 4; ++i) {
      const __m256 c = _mm256_cvtepi32_ps(_mm256_sub_epi32(q[i], eight));
      w[i] = Min ? _mm256_fmadd_ps(c, s, m) : _mm256_mul_ps(c, s);
    }
  }
};
using DecQ4_0 = DecQ4_0T<false>;

struct DecQ8_0 {
  static constexpr int kChunk = 32;  // weights per at() call
  const KernelArgs& a;
  explicit DecQ8_0(const KernelArgs& args) : a(args) {}
  void at(int64_t r, int64_t k, __m256* w) const {
    const uint8_t* blk = a.data + (r * (a.cols / 32) + k / 32) * 34;
    const __m256 s = _mm256_set1_ps(block_half(blk));
    for (int i = 0; i < 4; ++i) w[i] = _mm256_mul_ps(_mm256_cvtepi32_ps(i8x8(blk + 2 + 8 * i)), s);
  }
};

// q5_0 (value (code - 16) d) and, with Min, q5_1 (value code d + m); bit j of qh is bit 4 of code j.
template <bool Min>
struct DecQ5_0T {
  static constexpr int kChunk = 32;  // weights per at() call
  static constexpr int kBytes = Min ? 24 : 22, kQh = Min ? 4 : 2;
  const KernelArgs& a;
  __m256i m15 = _mm256_set1_epi32(15), sixteen = _mm256_set1_epi32(16), off = _mm256_set1_epi32(Min ? 0 : 16);
  __m256i bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
  explicit DecQ5_0T(const KernelArgs& args) : a(args) {}
  void at(int64_t r, int64_t k, __m256* w) const {
    const uint8_t* blk = a.data + (r * (a.cols / 32) + k / 32) * kBytes;
    const __m256 s = _mm256_set1_ps(block_half(blk)), m = _mm256_set1_ps(Min ? block_half(blk + 2) : 0.0f);
    const __m256i v0 = u8x8(blk + kQh + 4), v1 = u8x8(blk + kQh + 12);
    const __m256i lo[4] = {_mm256_and_si256(v0, m15), _mm256_and_si256(v1, m15), _mm256_srli_epi32(v0, 4),
                           _mm256_srli_epi32(v1, 4)};
    for (int i = 0; i < 4; ++i) {  // weights 8i..8i+7 take bits 8i..8i+7 of qh: qh byte i
      const __m256i hb = _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32(blk[kQh + i]), bit), bit);
      const __m256 c = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_or_si256(lo[i], _mm256_and_si256(hb, sixteen)), off));
      w[i] = Min ? _mm256_fmadd_ps(c, s, m) : _mm256_mul_ps(c, s);
    }
  }
};

// q4_k and, with Q5, q5_k (the fifth bit of sub-block j's codes is bit j of qh[l]): 32 weights, one sub-block.
template <bool Q5>
struct DecQxK {
  static constexpr int kChunk = 32;  // weights per at() call
  static constexpr int kCodes = Q5 ? 48 : 16;
  const KernelArgs& a;
  __m256i m15 = _mm256_set1_epi32(15), one = _mm256_set1_epi32(1);
  explicit DecQxK(const KernelArgs& args) : a(args) {}
  void at(int64_t r, int64_t k, __m256* w) const {
    const uint8_t* blk = Q5 ? gguf_block<quant_detail::BlockQ5_K, 256>(a, r, k) : q4_k_block(a, r, k);
    const int j = int((k / 32) % 8);
    uint8_t sc, m;
    quant_detail::q4_k_scale_min(j, blk + 4, sc, m);
    const __m256 s = _mm256_set1_ps(block_half(blk) * float(sc)), mn = _mm256_set1_ps(block_half(blk + 2) * float(m));
    const uint8_t* q = blk + kCodes + (j / 2) * 32;
    for (int i = 0; i < 4; ++i) {
      const __m256i v = u8x8(q + 8 * i);
      __m256i n = (j & 1) ? _mm256_srli_epi32(v, 4) : _mm256_and_si256(v, m15);
      if constexpr (Q5)
        n = _mm256_or_si256(n, _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(u8x8(blk + 16 + 8 * i), j), one), 4));
      w[i] = _mm256_fmsub_ps(_mm256_cvtepi32_ps(n), s, mn);
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
  __m256i m3 = _mm256_set1_epi32(3), one = _mm256_set1_epi32(1), four = _mm256_set1_epi32(4);
  explicit DecQ23K(const KernelArgs& args) : a(args) {}
  void at(int64_t r, int64_t k, __m256* w) const {
    const K23Chunk c = k23_chunk<Q3>(a, r, k, block_half);
    const __m128i sh = _mm_cvtsi32_si128(c.shift), hb = _mm_cvtsi32_si128(c.hbit);
    for (int i = 0; i < 4; ++i) {
      __m256i code = _mm256_and_si256(_mm256_srl_epi32(u8x8(c.qs + 8 * i), sh), m3);
      if constexpr (Q3)
        code = _mm256_sub_epi32(
            _mm256_or_si256(code, _mm256_slli_epi32(_mm256_and_si256(_mm256_srl_epi32(u8x8(c.hmask + 8 * i), hb), one), 2)),
            four);
      w[i] = _mm256_fmsub_ps(_mm256_cvtepi32_ps(code), _mm256_set1_ps(i < 2 ? c.s0 : c.s1),
                             _mm256_set1_ps(i < 2 ? c.m0 : c.m1));
    }
  }
};

// q4_k rows, one 64-weight group of a super-block per chunk (KernelArgs::wide == 64): the group's 32 code bytes
// in one load; dword lane l shifted right by 4q has in its low 4 bits the code of element 4l + q/2 + 32 (q & 1),
// of sub-block 2j + (q & 1) (XOrder::Q4K), so the even vectors share one scale and minimum and the odd ones
// the other: the codes become floats by a mask and a convert, with no widening.
struct DecQ4_Kx64 {
  static constexpr int kChunk = 64;
  const KernelArgs& a;
  explicit DecQ4_Kx64(const KernelArgs& args) : a(args) {}
  struct State {
    __m256i v;
    __m256 s0, s1, m0, m1;  // scale and minimum of the even / odd vectors
  };
  State prepare(int64_t r, int64_t k) const {
    const uint8_t* blk = q4_k_block(a, r, k);
    const int j = int((k % 256) / 64);
    uint8_t sc0, mn0, sc1, mn1;
    quant_detail::q4_k_scale_min(2 * j, blk + 4, sc0, mn0);
    quant_detail::q4_k_scale_min(2 * j + 1, blk + 4, sc1, mn1);
    const float d = block_half(blk), dmin = block_half(blk + 2);
    return {_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 16 + 32 * j)), _mm256_set1_ps(d * float(sc0)),
            _mm256_set1_ps(d * float(sc1)), _mm256_set1_ps(dmin * float(mn0)), _mm256_set1_ps(dmin * float(mn1))};
  }
  __m256 lookup(const State& st, int q) const {
    const __m256 c = _mm256_cvtepi32_ps(
        _mm256_and_si256(_mm256_srlv_epi32(st.v, _mm256_set1_epi32(4 * q)), _mm256_set1_epi32(15)));
    return (q & 1) ? _mm256_fmsub_ps(c, st.s1, st.m1) : _mm256_fmsub_ps(c, st.s0, st.m0);
  }
};

// Q6_K, 64 weights per chunk (two 32-weight quarters of a 128-weight half, plain order): the chunk's signed
// codes (code - 32) made as bytes and kept in the state, with the scales d * scales[j] of its 4 sub-blocks;
// vector q is 8 codes widened and converted, times the scale of sub-block q / 2.
struct DecQ6_Kx64 {
  static constexpr int kChunk = 64;
  const KernelArgs& a;
  explicit DecQ6_Kx64(const KernelArgs& args) : a(args) {}
  struct State {
    alignas(32) int8_t c[64];
    float s[4];
  };
  State prepare(int64_t r, int64_t k) const {
    const uint8_t* blk = gguf_block<quant_detail::BlockQ6_K, 256>(a, r, k);
    const int j = int(k % 256), h = j / 128, p = (j % 128) / 64;  // p = 1: the high nibbles, qh bits 4-7
    const __m256i m4 = _mm256_set1_epi8(15), m2 = _mm256_set1_epi8(3), off = _mm256_set1_epi8(32);
    const __m128i sl = _mm_cvtsi32_si128(4 * p), sh = _mm_cvtsi32_si128(4 * p);
    const __m256i l0 = _mm256_srl_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 64 * h)), sl);
    const __m256i l1 = _mm256_srl_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 64 * h + 32)), sl);
    const __m256i hb = _mm256_srl_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 128 + 32 * h)), sh);
    const __m256i c0 = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_slli_epi16(_mm256_and_si256(hb, m2), 4));
    const __m256i c1 = _mm256_or_si256(_mm256_and_si256(l1, m4),
                                       _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2), m2), 4));
    State st;
    _mm256_store_si256(reinterpret_cast<__m256i*>(st.c), _mm256_sub_epi8(c0, off));
    _mm256_store_si256(reinterpret_cast<__m256i*>(st.c + 32), _mm256_sub_epi8(c1, off));
    int32_t sc4;  // scales[j / 16 .. j / 16 + 3]
    std::memcpy(&sc4, blk + offsetof(quant_detail::BlockQ6_K, scales) + j / 16, 4);
    const float d = block_half(blk + offsetof(quant_detail::BlockQ6_K, d));
    _mm_storeu_ps(st.s, _mm_mul_ps(_mm_set1_ps(d), _mm_cvtepi32_ps(_mm_cvtepi8_epi32(_mm_cvtsi32_si128(sc4)))));
    return st;
  }
  __m256 lookup(const State& st, int q) const {
    const __m256i v = _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(st.c + 8 * q)));
    return _mm256_mul_ps(_mm256_cvtepi32_ps(v), _mm256_set1_ps(st.s[q / 2]));
  }
};

// Tile path: weights [k0, k0 + kn) of row r into out (kernel order).
template <class D>
void decode_tile(const KernelArgs& a, int64_t r, int64_t k0, int64_t kn, float* out) {
  const D d(a);
  for (int64_t k = k0; k < k0 + kn; k += D::kChunk, out += D::kChunk) {
    __m256 w[D::kChunk / 8];
    if constexpr (requires { d.prepare(r, k); }) {  // 64-weight chunk decoders: vectors from the chunk state
      const auto st = d.prepare(r, k);
#pragma GCC unroll 8
      for (int q = 0; q < 8; ++q) w[q] = d.lookup(st, q);  // unrolled: lookup's shift counts become immediates
    } else {
      d.at(r, k, w);
    }
    for (int i = 0; i < D::kChunk / 8; ++i) _mm256_storeu_ps(out + 8 * i, w[i]);
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
    case QuantFormat::NF4: case QuantFormat::FP4: return a.wide ? f(DecoderTag<DecBnb4x64>{}) : f(DecoderTag<DecBnb4>{});
    case QuantFormat::NVFP4: return a.wide ? f(DecoderTag<DecE2m1x64<false>>{}) : f(DecoderTag<DecE2m1>{});
    case QuantFormat::MXFP4: return a.wide ? f(DecoderTag<DecE2m1x64<true>>{}) : f(DecoderTag<DecE2m1>{});
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
    case QuantFormat::Q6_K: return a.wide ? f(DecoderTag<DecQ6_Kx64>{}) : R{};  // rows are whole super-blocks: always wide
    case QuantFormat::Q4_K: return a.wide ? f(DecoderTag<DecQ4_Kx64>{}) : f(DecoderTag<DecQ4_K>{});
    default: return R{};
  }
}

using DecodeFn = void (*)(const KernelArgs&, int64_t, int64_t, int64_t, float*);
DecodeFn decoder_for(const KernelArgs& a) {
  return with_decoder<DecodeFn>(a, [](auto t) -> DecodeFn { return decode_tile<typename decltype(t)::type>; });
}

template <int R, int T>
inline void micro(const float* tile, int64_t kn, const float* x, int64_t ldk, float* y, int64_t ldy) {
  __m256 acc[R][T];
  for (int i = 0; i < R; ++i)
    for (int t = 0; t < T; ++t) acc[i][t] = _mm256_setzero_ps();
  for (int64_t k = 0; k < kn; k += 8) {
    __m256 xv[T];
    for (int t = 0; t < T; ++t) xv[t] = _mm256_loadu_ps(x + t * ldk + k);
    for (int i = 0; i < R; ++i) {
      const __m256 w = _mm256_load_ps(tile + i * kSeg + k);
      for (int t = 0; t < T; ++t) acc[i][t] = _mm256_fmadd_ps(w, xv[t], acc[i][t]);
    }
  }
  for (int i = 0; i < R; ++i)
    for (int t = 0; t < T; ++t) y[t * ldy + i] += hsum(acc[i][t]);
}

template <int R>
void micro_rows(const float* tile, int64_t kn, const float* x, int64_t ldk, int64_t nt, float* y, int64_t ldy) {
  int64_t t = 0;
  for (; t + 4 <= nt; t += 4) {  // 2 rows x 4 tokens (16 ymm registers)
    int i = 0;
    for (; i + 2 <= R; i += 2) micro<2, 4>(tile + i * kSeg, kn, x + t * ldk, ldk, y + t * ldy + i, ldy);
    if (i < R) micro<1, 4>(tile + i * kSeg, kn, x + t * ldk, ldk, y + t * ldy + i, ldy);
  }
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
      for (int i = 0; i < nr; ++i) dec(a, rb + i, k0, kn, tile + i * kSeg);
      const float* x = a.xk + k0;
      float* y = a.y + rb;
      switch (nr) {
        case 4: micro_rows<4>(tile, kn, x, a.ldk, nt, y, N); break;
        case 3: micro_rows<3>(tile, kn, x, a.ldk, nt, y, N); break;
        case 2: micro_rows<2>(tile, kn, x, a.ldk, nt, y, N); break;
        default: micro_rows<1>(tile, kn, x, a.ldk, nt, y, N); break;
      }
    }
    for (int i = 0; i < nr; ++i) {
      const float m = row_mult(a, rb + i);
      if (m != 1.0f)
        for (int64_t t = 0; t < nt; ++t) a.y[t * N + rb + i] *= m;
    }
  }
}

// One token (decode): kGemvRows rows at a time, each group of 32 weights decoded straight into FMAs
// against x (no L1 tile), the next group's codes prefetched a 1024-column segment at a time (the AVX2
// tile path has no prefetch). Two rows: 16 ymm registers hold both rows' weights, the accumulators and x.
constexpr int kGemvRows = 2;

template <class D, int R>
void gemv_group(const KernelArgs& a, const D& d, int64_t r, int64_t r_next) {
  __m256 acc[R][2];
  for (int i = 0; i < R; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
  for (int64_t k = 0; k < a.k_main; k += D::kChunk) {
    if (k % kSeg == 0 && r_next >= 0) prefetch_rows(a, r_next, R, k, a.k_main - k < kSeg ? a.k_main - k : kSeg);
    if constexpr (requires { d.prepare(r, k); }) {  // a chunk's state per row (codes + table or scales), vectors on demand
      typename D::State st[R];
      for (int i = 0; i < R; ++i) st[i] = d.prepare(r + i, k);
#pragma GCC unroll 8
      for (int q = 0; q < 8; ++q) {  // unrolled: lookup's shift counts become immediates
        const __m256 x = _mm256_loadu_ps(a.xk + k + 8 * q);
        for (int i = 0; i < R; ++i) acc[i][q & 1] = _mm256_fmadd_ps(d.lookup(st[i], q), x, acc[i][q & 1]);
      }
    } else {
      __m256 w[R][4];
      for (int i = 0; i < R; ++i) d.at(r + i, k, w[i]);
      for (int j = 0; j < 4; ++j) {
        const __m256 x = _mm256_loadu_ps(a.xk + k + 8 * j);
        for (int i = 0; i < R; ++i) acc[i][j & 1] = _mm256_fmadd_ps(w[i][j], x, acc[i][j & 1]);
      }
    }
  }
  for (int i = 0; i < R; ++i) a.y[r + i] = hsum(_mm256_add_ps(acc[i][0], acc[i][1])) * row_mult(a, r + i);
}

template <class D>
void gemv_rows(const KernelArgs& a, int64_t r0, int64_t r1) {
  const D d(a);
  int64_t r = r0;
  for (; r + kGemvRows <= r1; r += kGemvRows) {
    const int64_t next = r + 2 * kGemvRows <= r1 ? r + kGemvRows : -1;
    gemv_group<D, kGemvRows>(a, d, r, next);
  }
  for (; r < r1; ++r) gemv_group<D, 1>(a, d, r, -1);
}

using GemvFn = void (*)(const KernelArgs&, int64_t, int64_t);
GemvFn gemv_for(const KernelArgs& a) {
  return with_decoder<GemvFn>(a, [](auto t) -> GemvFn { return gemv_rows<typename decltype(t)::type>; });
}

// int4 GPTQ: 8 output rows (one qweight word each) per vector; outer products over k.
template <int T>
void int4_block(const KernelArgs& a, int64_t n0, int64_t t0) {
  const int64_t N = a.rows, K = a.cols, g = a.block, Nw = (N + 7) / 8, Kp = (K + 7) / 8 * 8;
  const uint32_t* qw = reinterpret_cast<const uint32_t*>(a.data);
  const uint16_t* sc = reinterpret_cast<const uint16_t*>(a.scales);
  const __m256i shifts = _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28);
  const __m256i m15 = _mm256_set1_epi32(15);
  __m256 acc[T];
  for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps();
  const float* x = a.xk + t0 * a.ldk;
  for (int64_t k0 = 0; k0 < Kp; k0 += g) {
    const int64_t gi = k0 / g;
    const __m256 s = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(sc + gi * N + n0)));
    const __m256i zw = _mm256_set1_epi32(int(a.zeros[gi * Nw + n0 / 8]));
    const __m256 z = _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srlv_epi32(zw, shifts), m15));
    __m256 ag[T];
    for (int t = 0; t < T; ++t) ag[t] = _mm256_setzero_ps();
    const int64_t kend = k0 + g < Kp ? k0 + g : Kp;
    for (int64_t k = k0; k < kend; k += 8) {
      const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qw + (k / 8) * N + n0));
      for (int j = 0; j < 8; ++j) {
        const __m256 w = _mm256_sub_ps(
            _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srl_epi32(q, _mm_cvtsi32_si128(4 * j)), m15)), z);
        for (int t = 0; t < T; ++t) ag[t] = _mm256_fmadd_ps(w, _mm256_broadcast_ss(x + t * a.ldk + k + j), ag[t]);
      }
    }
    for (int t = 0; t < T; ++t) acc[t] = _mm256_fmadd_ps(ag[t], s, acc[t]);
  }
  for (int t = 0; t < T; ++t) _mm256_storeu_ps(a.y + (t0 + t) * N + n0, acc[t]);
}

// ---- integer path: q4_0 / q8_0 weights x int8 activations (maddubs + madd; natural block order) ----
// R rows share each activation block load; one f32 accumulator per row, block scales applied with two
// FMAs per block, the next row group prefetched while this one streams. q4_0: u8 nibbles q times the
// int8 activations, d_w (d_x dot - 8 d_x sum x) (maddubs pair sums <= 2*15*127, no saturation). q8_0:
// the sign trick, |w| times x carrying w's sign, exact signed products (pair sums <= 2*128*127).
template <bool Q4, int R>
void int_group(const KernelArgs& a, int64_t r, int64_t t, bool prefetch_next) {
  constexpr int64_t bytes = Q4 ? 18 : 34;
  const int64_t nb = a.cols / 32, row_bytes = nb * bytes;
  const IntGroupIn in(a, r, t, row_bytes, R);
  const uint8_t* row = in.row;
  const char* pf = in.pf;
  const int8_t* xq = in.xq;
  const float *dx = in.dx, *xs = in.xs;
  const __m256i m4 = _mm256_set1_epi8(15);
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc[R];
  for (int i = 0; i < R; ++i) acc[i] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    if (prefetch_next)
      for (int64_t o = 0; o < R * bytes; o += 64) _mm_prefetch(pf + b * R * bytes + o, _MM_HINT_T1);
    const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + b * 32));
    const __m256 sx = _mm256_broadcast_ss(dx + b);
    const __m256 cx = _mm256_broadcast_ss(xs + b);  // 8 d_x sum(x) over 8 lanes
    for (int i = 0; i < R; ++i) {
      const uint8_t* A = row + i * row_bytes + b * bytes;
      __m256i p;
      if constexpr (Q4) {
        const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(A + 2));
        const __m256i w = _mm256_and_si256(_mm256_inserti128_si256(_mm256_castsi128_si256(q), _mm_srli_epi16(q, 4), 1), m4);
        p = _mm256_maddubs_epi16(w, xv);
      } else {
        const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(A + 2));
        p = _mm256_maddubs_epi16(_mm256_abs_epi8(w), _mm256_sign_epi8(xv, w));
      }
      const __m256 f = _mm256_cvtepi32_ps(_mm256_madd_epi16(p, ones));
      uint16_t h;
      std::memcpy(&h, A, 2);
      const __m256 dw = _mm256_cvtph_ps(_mm_set1_epi16(int16_t(h)));
      acc[i] = _mm256_fmadd_ps(Q4 ? _mm256_fmsub_ps(f, sx, cx) : _mm256_mul_ps(f, sx), dw, acc[i]);
    }
  }
  for (int i = 0; i < R; ++i) a.y[t * a.rows + r + i] = hsum(acc[i]);
}

// q4_k and, with Q5, q5_k x int8 activations: sub-block j of a super-block (32 weights, one activation block) is
// the low (even j) or high (odd j) nibbles of 32 code bytes (q5_k: bit j of qh[l] as the fifth bit; codes <= 31,
// so vpmaddubsw does not saturate); per sub-block d sc_j (d_x sum q x) - dmin m_j (d_x sum x), the minimum terms
// of a super-block summed in scalar and subtracted once per row.
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
  const __m256i m4 = _mm256_set1_epi8(15), ones = _mm256_set1_epi16(1);
  __m256 acc[R];
  float tail[R];
  for (int i = 0; i < R; ++i) acc[i] = _mm256_setzero_ps(), tail[i] = 0.0f;
  for (int64_t sb = 0; sb < ns; ++sb) {
    if (prefetch_next)
      for (int64_t o = 0; o < R * bytes; o += 64) _mm_prefetch(pf + sb * R * bytes + o, _MM_HINT_T1);
    float s[R][8];  // d sc_j; the minimum term dmin m_j (activation sum of sub-block j) goes to a scalar
    for (int i = 0; i < R; ++i) {
      const uint8_t* blk = row + i * row_bytes + sb * bytes;
      const float d = block_half(blk), dmin = block_half(blk + 2);
      float mt = 0.0f;
      for (int j = 0; j < 8; ++j) {
        uint8_t sc, mn;
        quant_detail::q4_k_scale_min(j, blk + 4, sc, mn);
        s[i][j] = d * float(sc);
        mt += float(mn) * xs[sb * 8 + j];
      }
      tail[i] += dmin * mt;
    }
    for (int j = 0; j < 8; ++j) {
      const int64_t b = sb * 8 + j;
      const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + b * 32));
      const __m256 sx = _mm256_broadcast_ss(dx + b);
      for (int i = 0; i < R; ++i) {
        const uint8_t* blk = row + i * row_bytes + sb * bytes;
        const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + qs_at + 32 * (j / 2)));
        __m256i w = _mm256_and_si256((j & 1) ? _mm256_srli_epi16(q, 4) : q, m4);
        if constexpr (Q5) {
          const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + offsetof(quant_detail::BlockQ5_K, qh)));
          w = _mm256_or_si256(w, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, j), _mm256_set1_epi8(1)), 4));
        }
        const __m256 f = _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(w, xv), ones));
        acc[i] = _mm256_fmadd_ps(_mm256_mul_ps(f, sx), _mm256_set1_ps(s[i][j]), acc[i]);
      }
    }
  }
  for (int i = 0; i < R; ++i) a.y[t * a.rows + r + i] = hsum(acc[i]) - tail[i];
}

// Q6_K / Q3_K / Q2_K x int8 activations: one loop (kquarter_int_group) over 32-weight quarters v of each
// super-block (one activation block; half v / 4, quarter q = v % 4 of it). A format policy makes the quarter's
// code bytes (unsigned) and the 16 sub-block scales (and minimums) of a super-block; maddubs + madd give 8 lanes,
// 4 per 16-weight sub-block (lanes 0-3: sub-block 2v, 4-7: 2v + 1). A code offset comes off in int32 as offset
// times each lane's activation sum, a minimum in f32 against the same sums (shared by the rows); then d_x.

// The 16 sub-block factors f * v[j] of a super-block (v: 16 bytes, signed or not) as floats at out.
template <bool Signed>
inline void scaled16(__m128i v, float f, float* out) {
  const __m256 fv = _mm256_set1_ps(f);
  auto wide = [](__m128i x) { return Signed ? _mm256_cvtepi8_epi32(x) : _mm256_cvtepu8_epi32(x); };
  _mm256_store_ps(out, _mm256_mul_ps(fv, _mm256_cvtepi32_ps(wide(v))));
  _mm256_store_ps(out + 8, _mm256_mul_ps(fv, _mm256_cvtepi32_ps(wide(_mm_srli_si128(v, 8)))));
}

// Q6_K: codes 0..63 from 32 bytes of ql (nibble 4 (q / 2)) and 32 of qh (bits 2q), offset 32; d scales[j].
struct Q6KQuarters {
  using Block = quant_detail::BlockQ6_K;
  static constexpr int kOffsetShift = 5;  // offset 32
  static constexpr bool kMin = false;
  static void scales(const uint8_t* blk, float* sc, float*) {
    scaled16<true>(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + offsetof(Block, scales))),
                   block_half(blk + offsetof(Block, d)), sc);
  }
  static __m256i codes(const uint8_t* blk, int v) {
    const int h = v / 4, q = v % 4;
    const __m256i l = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 64 * h + 32 * (q & 1)));
    const __m256i hb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 128 + 32 * h));
    return _mm256_or_si256(
        _mm256_and_si256(_mm256_srl_epi16(l, _mm_cvtsi32_si128(4 * (q >> 1))), _mm256_set1_epi8(15)),
        _mm256_slli_epi16(_mm256_and_si256(_mm256_srl_epi16(hb, _mm_cvtsi32_si128(2 * q)), _mm256_set1_epi8(3)), 4));
  }
};

// Q3_K: codes 0..7, bits 2q of the half's 32 qs bytes and bit v of hmask as the third, offset 4; d (s_j - 32)
// (quant_detail::q3_k_scale for all 16: the low nibbles of bytes 0-7, then their high nibbles, two bits each of
// bytes 8-11 on top).
struct Q3KQuarters {
  using Block = quant_detail::BlockQ3_K;
  static constexpr int kOffsetShift = 2;  // offset 4
  static constexpr bool kMin = false;
  static void scales(const uint8_t* blk, float* sc, float*) {
    const uint8_t* s12 = blk + offsetof(Block, scales);
    alignas(16) uint8_t b[16] = {};
    std::memcpy(b, s12, 12);
    uint32_t hb;
    std::memcpy(&hb, s12 + 8, 4);
    const __m128i v = _mm_load_si128(reinterpret_cast<const __m128i*>(b)), m4 = _mm_set1_epi8(15);
    const __m128i lo = _mm_unpacklo_epi64(_mm_and_si128(v, m4), _mm_and_si128(_mm_srli_epi16(v, 4), m4));
    const __m128i hi = _mm_setr_epi32(int(hb & 0x03030303u), int((hb >> 2) & 0x03030303u),
                                      int((hb >> 4) & 0x03030303u), int((hb >> 6) & 0x03030303u));
    const __m128i s6 = _mm_sub_epi8(_mm_or_si128(lo, _mm_slli_epi16(hi, 4)), _mm_set1_epi8(32));
    scaled16<true>(s6, block_half(blk + offsetof(Block, d)), sc);
  }
  static __m256i codes(const uint8_t* blk, int v) {
    const __m256i qs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + offsetof(Block, qs) + 32 * (v / 4)));
    const __m256i hm = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + offsetof(Block, hmask)));
    return _mm256_or_si256(
        _mm256_and_si256(_mm256_srl_epi16(qs, _mm_cvtsi32_si128(2 * (v % 4))), _mm256_set1_epi8(3)),
        _mm256_slli_epi16(_mm256_and_si256(_mm256_srl_epi16(hm, _mm_cvtsi32_si128(v)), _mm256_set1_epi8(1)), 2));
  }
};

// Q2_K: codes 0..3 in Q3_K's qs layout, no offset; d sc_j and the minimum dmin m_j (scales byte j: sc | m << 4).
struct Q2KQuarters {
  using Block = quant_detail::BlockQ2_K;
  static constexpr int kOffsetShift = 0;
  static constexpr bool kMin = true;
  static void scales(const uint8_t* blk, float* sc, float* mn) {
    const __m128i s8 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + offsetof(Block, scales)));
    const __m128i m4 = _mm_set1_epi8(15);
    scaled16<false>(_mm_and_si128(s8, m4), block_half(blk + offsetof(Block, d)), sc);
    scaled16<false>(_mm_and_si128(_mm_srli_epi16(s8, 4), m4), block_half(blk + offsetof(Block, dmin)), mn);
  }
  static __m256i codes(const uint8_t* blk, int v) {
    const __m256i qs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + offsetof(Block, qs) + 32 * (v / 4)));
    return _mm256_and_si256(_mm256_srl_epi16(qs, _mm_cvtsi32_si128(2 * (v % 4))), _mm256_set1_epi8(3));
  }
};

template <class P, int R>
void kquarter_int_group(const KernelArgs& a, int64_t r, int64_t t, bool prefetch_next) {
  constexpr int64_t bytes = sizeof(typename P::Block);
  const int64_t ns = a.cols / 256, row_bytes = ns * bytes;
  const IntGroupIn in(a, r, t, row_bytes, R);
  const __m256i ones8 = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1);
  auto pair = [](const float* f, int v) { return _mm256_set_m128(_mm_set1_ps(f[2 * v + 1]), _mm_set1_ps(f[2 * v])); };
  __m256 acc[R];
  for (int i = 0; i < R; ++i) acc[i] = _mm256_setzero_ps();
  for (int64_t sb = 0; sb < ns; ++sb) {
    if (prefetch_next)
      for (int64_t o = 0; o < R * bytes; o += 64) _mm_prefetch(in.pf + sb * R * bytes + o, _MM_HINT_T1);
    alignas(32) float sc[R][16], mn[R][16];  // per sub-block: the scale, and the minimum where P has one
    for (int i = 0; i < R; ++i) P::scales(in.row + i * row_bytes + sb * bytes, sc[i], mn[i]);
    for (int v = 0; v < 8; ++v) {
      const int64_t b = sb * 8 + v;
      const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(in.xq + b * 32));
      const __m256i xsum = _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, xv), ones16);  // 4 activations a lane
      const __m256 sx = _mm256_broadcast_ss(in.dx + b);
      for (int i = 0; i < R; ++i) {
        const __m256i codes = P::codes(in.row + i * row_bytes + sb * bytes, v);
        __m256i dot = _mm256_madd_epi16(_mm256_maddubs_epi16(codes, xv), ones16);
        if constexpr (P::kOffsetShift > 0) dot = _mm256_sub_epi32(dot, _mm256_slli_epi32(xsum, P::kOffsetShift));
        if constexpr (P::kMin)
          acc[i] = _mm256_fmadd_ps(
              _mm256_fmsub_ps(_mm256_cvtepi32_ps(dot), pair(sc[i], v), _mm256_mul_ps(_mm256_cvtepi32_ps(xsum), pair(mn[i], v))),
              sx, acc[i]);
        else
          acc[i] = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(dot), sx), pair(sc[i], v), acc[i]);
      }
    }
  }
  for (int i = 0; i < R; ++i) a.y[t * a.rows + r + i] = hsum(acc[i]);
}

// q4_1 / q5_0 / q5_1 x int8 activations, one 32-weight block at a time: unsigned codes in natural order (q5: bit j of
// qh spread to byte j by a shuffle and compare; codes <= 31, so vpmaddubsw does not saturate); per block
// d (d_x sum q x) + c (d_x sum x), c = m (q4_1, q5_1) or -16 d (q5_0), the second term in scalar.
template <QuantFormat F, int R>
void legacy_int_group(const KernelArgs& a, int64_t r, int64_t t, bool prefetch_next) {
  using L = LegacyIntBlock<F>;
  using B = typename L::B;
  constexpr int64_t bytes = L::kBytes;
  const int64_t nb = a.cols / 32, row_bytes = nb * bytes;
  const IntGroupIn in(a, r, t, row_bytes, R);
  const __m256i m4 = _mm256_set1_epi8(15), b16 = _mm256_set1_epi8(16), ones = _mm256_set1_epi16(1);
  const __m256i spread = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3,
                                          3, 3, 3, 3, 3);
  const __m256i bit = _mm256_set1_epi64x(int64_t(0x8040201008040201ULL));
  __m256 acc[R];
  float tail[R];
  for (int i = 0; i < R; ++i) acc[i] = _mm256_setzero_ps(), tail[i] = 0.0f;
  for (int64_t b = 0; b < nb; ++b) {
    if (prefetch_next && b % 4 == 0)
      for (int64_t o = 0; o < 4 * R * bytes; o += 64) _mm_prefetch(in.pf + b * R * bytes + o, _MM_HINT_T1);
    const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(in.xq + b * 32));
    const float dx = in.dx[b], xs = in.xs[b];
    for (int i = 0; i < R; ++i) {
      const uint8_t* blk = in.row + i * row_bytes + b * bytes;
      const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + offsetof(B, qs)));
      __m256i c = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), m4);
      if constexpr (L::kQ5) {
        uint32_t h;
        std::memcpy(&h, blk + offsetof(B, qh), 4);
        const __m256i hb = _mm256_shuffle_epi8(_mm256_set1_epi32(int32_t(h)), spread);
        c = _mm256_or_si256(c, _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(hb, bit), bit), b16));
      }
      const __m256i dot = _mm256_madd_epi16(_mm256_maddubs_epi16(c, xv), ones);
      const float d = block_half(blk);
      acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_set1_ps(d * dx), acc[i]);
      tail[i] += L::offset(blk, d, block_half) * xs;
    }
  }
  for (int i = 0; i < R; ++i) a.y[t * a.rows + r + i] = hsum(acc[i]) + tail[i];
}

template <QuantFormat F>
struct LegacyIntGroup {
  template <int R>
  struct Rows {
    static void run(const KernelArgs& a, int64_t r, int64_t t, bool p) { legacy_int_group<F, R>(a, r, t, p); }
  };
};
template <int R>
struct Q4_0IntGroup {
  static void run(const KernelArgs& a, int64_t r, int64_t t, bool p) { int_group<true, R>(a, r, t, p); }
};
template <int R>
struct Q8_0IntGroup {
  static void run(const KernelArgs& a, int64_t r, int64_t t, bool p) { int_group<false, R>(a, r, t, p); }
};
template <int R>
struct Q4KIntGroup {
  static void run(const KernelArgs& a, int64_t r, int64_t t, bool p) { q4k_int_group<false, R>(a, r, t, p); }
};
template <int R>
struct Q5KIntGroup {
  static void run(const KernelArgs& a, int64_t r, int64_t t, bool p) { q4k_int_group<true, R>(a, r, t, p); }
};
template <class P>
struct KQuarterIntGroup {
  template <int R>
  struct Rows {
    static void run(const KernelArgs& a, int64_t r, int64_t t, bool p) { kquarter_int_group<P, R>(a, r, t, p); }
  };
};

}  // namespace

void quantize_act_row_avx2(const float* x, int64_t K, int8_t* q, float* d, float* dsum) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  for (int64_t b = 0; b < K / 32; ++b) {
    __m256 v[4], m = _mm256_setzero_ps();
    for (int j = 0; j < 4; ++j) {
      v[j] = _mm256_loadu_ps(x + b * 32 + 8 * j);
      m = _mm256_max_ps(m, _mm256_andnot_ps(sign, v[j]));
    }
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    const float amax = _mm_cvtss_f32(_mm_max_ss(m4, _mm_shuffle_ps(m4, m4, 1)));
    const float db = amax / 127.0f, id = db > 0.0f ? 1.0f / db : 0.0f;
    const __m256 iv = _mm256_set1_ps(id);
    __m256i qi[4];
    for (int j = 0; j < 4; ++j) qi[j] = _mm256_cvtps_epi32(_mm256_mul_ps(v[j], iv));  // round half even
    const __m256i s = _mm256_add_epi32(_mm256_add_epi32(qi[0], qi[1]), _mm256_add_epi32(qi[2], qi[3]));
    __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4E));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xB1));
    d[b] = act_block_scale(amax);
    dsum[b] = d[b] * float(_mm_cvtsi128_si32(s4));
    // packs interleave 128-bit lanes: 0-3 8-11 4-7 12-15 | ... ; one permute restores the order.
    const __m256i p16 = _mm256_packs_epi32(qi[0], qi[1]), p16b = _mm256_packs_epi32(qi[2], qi[3]);
    const __m256i p8 = _mm256_packs_epi16(p16, p16b);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + b * 32),
                        _mm256_permutevar8x32_epi32(p8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
  }
}

bool rows_avx2(const KernelArgs& a, int64_t r0, int64_t r1) {
  if (a.act == ActMode::Int8) {
    if (a.format == QuantFormat::Q4_0) int_rows_by<Q4_0IntGroup>(a, r0, r1);
    else if (a.format == QuantFormat::Q8_0) int_rows_by<Q8_0IntGroup>(a, r0, r1);
    else if (a.format == QuantFormat::Q4_K) int_rows_by<Q4KIntGroup>(a, r0, r1);
    else if (a.format == QuantFormat::Q5_K) int_rows_by<Q5KIntGroup>(a, r0, r1);
    else if (a.format == QuantFormat::Q4_1) int_rows_by<LegacyIntGroup<QuantFormat::Q4_1>::Rows>(a, r0, r1);
    else if (a.format == QuantFormat::Q5_0) int_rows_by<LegacyIntGroup<QuantFormat::Q5_0>::Rows>(a, r0, r1);
    else if (a.format == QuantFormat::Q5_1) int_rows_by<LegacyIntGroup<QuantFormat::Q5_1>::Rows>(a, r0, r1);
    else if (a.format == QuantFormat::Q6_K) int_rows_by<KQuarterIntGroup<Q6KQuarters>::Rows>(a, r0, r1);
    else if (a.format == QuantFormat::Q3_K) int_rows_by<KQuarterIntGroup<Q3KQuarters>::Rows>(a, r0, r1);
    else if (a.format == QuantFormat::Q2_K) int_rows_by<KQuarterIntGroup<Q2KQuarters>::Rows>(a, r0, r1);
    else return false;
    return true;
  }
  if (a.format == QuantFormat::INT4) {
    for (int64_t n0 = r0; n0 + 8 <= r1; n0 += 8) {
      int64_t t = 0;
      for (; t + 4 <= a.n_tokens; t += 4) int4_block<4>(a, n0, t);
      for (; t < a.n_tokens; ++t) int4_block<1>(a, n0, t);
    }
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
