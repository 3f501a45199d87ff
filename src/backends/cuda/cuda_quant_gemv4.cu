// backends/cuda/cuda_quant_gemv4.cu — decode GEMV (1..8 tokens) for the 4-bit formats (nf4, fp4, nvfp4,
// mxfp4, int4, q4_0, q4_k) on tensor cores. Codes come in the mma tile layout (cuda_quant_impl.cuh): a
// lane's 16-byte load holds its A fragments of mma.m16n8k16 for 16 rows x 64 k. Each 8-code word is
// decoded to f16 pairs by four lookups (one per byte) into a 256-entry table of f16 pairs in shared
// memory, replicated per lane so that no lookup conflicts (made at block start by byte-permute lookups
// into the format's 16-entry table), or, for integer codes, by or-ing them into the mantissa of
// 1024 and subtracting the bias (with the int4 zero point) in f16 (exact), and the
// input goes in as two f16 halves (hi + lo, ~22 significant bits) after a per-token power-of-two scale,
// so products are exact and the f32 accumulation in the tensor core leaves the result f32-accurate for
// every table that f16 holds exactly (several tokens: one mma per half; one token: hi and lo in B
// columns 0 and 1 of a single mma). Block scales are applied to the f32 fragments when a scale block
// ends (q4_k's minimum through a second mma against ones, i.e. the block sum of x).
// Work split (like the one-token bf16 GEMV): each block owns a range of 16-row groups, cut into units
// of U spans (64 columns each); warps take contiguous unit ranges with the next unit's codes in flight;
// unit sums meet in shared memory and are added per row in a fixed order (deterministic, no atomics).
#include <algorithm>
#include <string>
#include <type_traits>

#include "backends/cuda/cuda_kernels.cuh"
#include "backends/cuda/cuda_quant_impl.cuh"
#include "qforge/memory.h"

namespace qforge::cuda {

namespace {

constexpr int kMaxW = 4;
constexpr int kThreads = 512, kWarps = kThreads / 32;  // one block per SM at ~100 registers

struct Gemv4Args {
  DevQuant w[kMaxW];
  float* y[kMaxW];
  int group_start[kMaxW + 1];  // cumulative 16-row groups
  int nw = 0;
  LinearInputDev in;
  int ntok = 0, cols = 0, kp = 0;
  int nch = 0;      // units per row group
  int total = 0;    // row groups of all weights
  int tstride = 0;  // 32-bit words per token in the staged input (kp + 16: spreads tokens over banks)
  const uint32_t* xg = nullptr;  // input staged once per launch in global memory (same layout), or null
  const int* xexp_g = nullptr;   // its per-token exponents
  bool accumulate = false;
  uint32_t lut_lo[4], lut_hi[4];
  float int_bias = 1024.f;  // integer codes: 1024 - lut[0]
};

// ---- input staging: f32 -> per-token 2^-e scale -> f16 hi/lo pairs in B-fragment order ----
// Token t's k step q (16 k) is 16 words at t * tstride + 16 q; lane (g, tq) of the mma reads the uint4 at
// + 4 tq: {hi(x[2tq], x[2tq+1]), hi(x[2tq+8], x[2tq+9]), lo(...), lo(...)} with k relative to the step.

__device__ void convert_token(uint32_t* xs, int kp, int e) {
  const float sc = ldexpf(1.f, -e);
  for (int q = threadIdx.x; q < kp / 16; q += blockDim.x) {
    float4* p = reinterpret_cast<float4*>(xs + 16 * q);
    float v[16];
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const float4 f = p[j];
      v[4 * j] = f.x * sc;
      v[4 * j + 1] = f.y * sc;
      v[4 * j + 2] = f.z * sc;
      v[4 * j + 3] = f.w * sc;
    }
    uint4* o = reinterpret_cast<uint4*>(p);
#pragma unroll
    for (int tq = 0; tq < 4; ++tq) {
      uint32_t wd[4];
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const float x0 = v[2 * tq + 8 * h], x1 = v[2 * tq + 8 * h + 1];
        const __half2 hi = __floats2half2_rn(x0, x1);
        const float2 hf = __half22float2(hi);
        const __half2 lo = __floats2half2_rn(x0 - hf.x, x1 - hf.y);
        wd[h] = *reinterpret_cast<const uint32_t*>(&hi);
        wd[2 + h] = *reinterpret_cast<const uint32_t*>(&lo);
      }
      o[tq] = make_uint4(wd[0], wd[1], wd[2], wd[3]);
    }
  }
}

// amax of n floats over the block -> exponent e with amax * 2^-e in [2^14, 2^15) (0 when amax is 0 or
// not finite). Every thread must call it; ends with a barrier.
__device__ int token_exponent(const float* x, int n, float* red) {
  float m = 0.f;
  for (int i = threadIdx.x; i < n; i += blockDim.x) m = fmaxf(m, fabsf(x[i]));
  const float am = block_max(m, red);
  if (!(am > 0.f) || !isfinite(am)) return 0;
  return max(-100, min(100, ilogbf(am) - 14));
}

// Block-cooperative staging of every token into xs (shared or global); exponents into xe.
__device__ void stage_tokens(const Gemv4Args& a, uint32_t* xs, int* xe, float* red) {
  for (int t = 0; t < a.ntok; ++t) {
    float* dst = reinterpret_cast<float*>(xs + size_t(t) * a.tstride);
    stage_linear_input(a.in, t, a.cols, dst, red);
    for (int i = a.cols + threadIdx.x; i < a.kp; i += blockDim.x) dst[i] = 0.f;
    __syncthreads();
    const int e = token_exponent(dst, a.cols, red);
    if (threadIdx.x == 0) xe[t] = e;
    convert_token(xs + size_t(t) * a.tstride, a.kp, e);
  }
  __syncthreads();
}

__global__ void stage4_global_kernel(const Gemv4Args a, uint32_t* out, int* xexp) {
  __shared__ float red[32];
  __shared__ int xe[8];
  stage_tokens(a, out, xe, red);
  if (threadIdx.x < a.ntok) xexp[threadIdx.x] = xe[threadIdx.x];
}

// ---- decode ----

__device__ __forceinline__ uint32_t prmt(uint32_t a, uint32_t b, uint32_t sel) {
  uint32_t d;  // raw prmt: __byte_perm would mask every selector to its documented 3 bits
  asm("prmt.b32 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(sel));
  return d;
}

// Table formats: 8 codes (nibble i = A-fragment element a_i) -> the 4 f16x2 A registers, by byte-permute
// lookups into the low- and high-byte halves of the f16 table (entries 0-7 and 8-15 looked up separately
// with the code's low 3 bits, then picked by its bit 3).
__device__ __forceinline__ void decode_lut(uint32_t w, const uint32_t (&lo)[4], const uint32_t (&hi)[4], uint32_t (&a)[4]) {
  const uint32_t cm = w & 0x77777777u;                           // low 3 bits (prmt's bit 3 would sign-fill)
  const uint32_t pick = ((w >> 1) & 0x44444444u) | 0x32103210u;  // byte i of the low or high lookup
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const uint32_t c = h ? cm >> 16 : cm, p = h ? pick >> 16 : pick;
    const uint32_t l = prmt(prmt(lo[0], lo[1], c), prmt(lo[2], lo[3], c), p);
    const uint32_t u = prmt(prmt(hi[0], hi[1], c), prmt(hi[2], hi[3], c), p);
    a[2 * h] = prmt(l, u, 0x5140);
    a[2 * h + 1] = prmt(l, u, 0x7362);
  }
}

// Table formats through shared memory: byte j of the word (nibbles 2j, 2j + 1) indexes a 256-entry table of
// f16 pairs (lut[b & 15], lut[b >> 4]) that is A register j. The table is replicated once per lane
// (entry b of lane l at word 32 b + l: every lane reads its own bank, whatever the codes), 32 KB a block;
// 3 instructions per 2 weights instead of ~5 for the register lookup (which now only fills the table).
// H100, nf4 14336x4096: 1376 -> 1541 GB/s; the fill costs ~0.3 us, so 2048x2048 lost 5% (perf-notes).
constexpr int kTableWords = 256 * 32;
// `lane_tbl` is the shared-memory byte address of the lane's copy of entry 0: one lookup is then byte
// extract, shift-add, load (indexing a uint32_t pointer cost a fourth instruction: idx * 32 + lane, then
// * 4 + base; SASS of nf4, H100).
__device__ __forceinline__ void decode_tbl(uint32_t w, uint32_t lane_tbl, uint32_t (&a)[4]) {
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const uint32_t addr = lane_tbl + (prmt(w, 0u, 0x4440u + j) << 7);
    asm volatile("ld.shared.b32 %0, [%1];" : "=r"(a[j]) : "r"(addr));
  }
}

// Integer formats (pair order: nibbles j, j + 4 -> register j): (1024 + c) as f16 by or-ing the code into
// the mantissa of 1024, minus the per-row bias 1024 - lut[0] (+ zero point): exact small integers.
__device__ __forceinline__ void decode_int(uint32_t w, __half2 bias0, __half2 bias1, uint32_t (&a)[4]) {
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const uint32_t v = ((w >> (4 * j)) & 0x000F000Fu) | 0x64006400u;
    const __half2 h = __hsub2(*reinterpret_cast<const __half2*>(&v), (j & 1) ? bias1 : bias0);
    a[j] = *reinterpret_cast<const uint32_t*>(&h);
  }
}

__device__ __forceinline__ void mma16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ int g4_weight(const Gemv4Args& a, int group) {
  int wi = 0;
  while (wi + 1 < a.nw && group >= a.group_start[wi + 1]) ++wi;
  return wi;
}

template <int U>
__device__ __forceinline__ void load_unit(const Gemv4Args& a, int group, int ch, int lane, uint4 (&u)[U]) {
  const int wi = g4_weight(a, group);
  const int nkc = a.kp >> 6, kc0 = ch * U;
  const uint8_t* p = a.w[wi].codes + (int64_t(group - a.group_start[wi]) * nkc + kc0) * 512 + lane * 16;
#pragma unroll
  for (int s = 0; s < U; ++s)
    u[s] = kc0 + s < nkc ? __ldg(reinterpret_cast<const uint4*>(p + s * 512)) : make_uint4(0, 0, 0, 0);
}

// The block scales (and q4_k minimums, int4 zero points) of the lane's rows g, g + 8 in one span of 64 k,
// as the raw words the loads return: a unit's words are requested together with its codes, one unit
// ahead of their use (requested at the span's start they were the kernel's main stall: each waited a
// global-load latency behind ~50 instructions of decode; perf-notes "CUDA decode, round 5").
template <ScaleKind S, bool Z, int KS>
struct SpanScales {
  static constexpr int NG = 4 / KS;  // scale blocks per span
  static constexpr int RW = S == ScaleKind::F32 ? NG : S == ScaleKind::F16 ? (NG + 1) / 2 : S == ScaleKind::Q4K ? 2 : 1;
  uint32_t w[2][RW];
  uint32_t z[2];  // int4 zero points, byte j of block j
};

// Loads the raw scale words of row r (`row` = scale_row(d, r)) for the span at k = 64 kc.
template <ScaleKind S, bool Z, int KS>
__device__ __forceinline__ void fetch_span_scales(const DevQuant& d, int r, const void* row, int kc, int h,
                                                  SpanScales<S, Z, KS>& ss) {
  constexpr int NG = 4 / KS;
  uint32_t* w = ss.w[h];
  if constexpr (S == ScaleKind::F32) {
    const float* p = static_cast<const float*>(row) + (int64_t(kc * 64) >> d.sc_shift);
    if constexpr (NG == 1) {
      w[0] = __float_as_uint(__ldg(p));
    } else if constexpr (NG == 2) {
      const float2 v = __ldg(reinterpret_cast<const float2*>(p));
      w[0] = __float_as_uint(v.x), w[1] = __float_as_uint(v.y);
    } else {
      const float4 v = __ldg(reinterpret_cast<const float4*>(p));
      w[0] = __float_as_uint(v.x), w[1] = __float_as_uint(v.y), w[2] = __float_as_uint(v.z), w[3] = __float_as_uint(v.w);
    }
  } else if constexpr (S == ScaleKind::F16) {
    const uint16_t* p = static_cast<const uint16_t*>(row) + (int64_t(kc * 64) >> d.sc_shift);
    if constexpr (NG == 1) {
      w[0] = __ldg(p);
    } else if constexpr (NG == 2) {
      w[0] = __ldg(reinterpret_cast<const uint32_t*>(p));
    } else {
      w[0] = uint32_t(__ldg(p)) | uint32_t(__ldg(p + 1)) << 16;
      w[1] = uint32_t(__ldg(p + 2)) | uint32_t(__ldg(p + 3)) << 16;
    }
  } else if constexpr (S == ScaleKind::E4M3) {  // nvfp4: 4 blocks of 16 -> one 32-bit load
    static_assert(NG == 4);
    w[0] = __ldg(reinterpret_cast<const uint32_t*>(static_cast<const uint8_t*>(row) + kc * 4));
  } else if constexpr (S == ScaleKind::E8M0) {  // mxfp4: 2 blocks of 32
    static_assert(NG == 2);
    w[0] = __ldg(reinterpret_cast<const uint16_t*>(static_cast<const uint8_t*>(row) + kc * 2));
  } else {  // Q4K: 2 sub-blocks of 32 (u16 sc | m << 8) and the (d, dmin) of their 256-block
    static_assert(S == ScaleKind::Q4K && NG == 2);
    w[0] = __ldg(reinterpret_cast<const uint32_t*>(static_cast<const uint16_t*>(row) + kc * 2));
    w[1] = __ldg(reinterpret_cast<const uint32_t*>(d.q4k_d + int64_t(r) * (d.kp >> 8) + (kc >> 2)));
  }
  if constexpr (Z) {
    ss.z[h] = 0;
#pragma unroll
    for (int j = 0; j < NG; ++j)
      ss.z[h] |= uint32_t(__ldg(d.zeros + int64_t(r) * d.sc_row + ((kc * 64 + j * KS * 16) >> d.sc_shift))) << (8 * j);
  }
}

__device__ __forceinline__ float2 half2_bits(uint32_t v) {
  return __half22float2(*reinterpret_cast<const __half2*>(&v));
}

// The NG block scales (and minimums) of row h of a span from its raw words.
template <ScaleKind S, bool Z, int KS>
__device__ __forceinline__ void decode_span_scales(const SpanScales<S, Z, KS>& ss, int h, float (&sc)[4 / KS],
                                                   float (&mn)[4 / KS]) {
  constexpr int NG = 4 / KS;
  const uint32_t* w = ss.w[h];
#pragma unroll
  for (int j = 0; j < NG; ++j) mn[j] = 0.f;
  if constexpr (S == ScaleKind::F32) {
#pragma unroll
    for (int j = 0; j < NG; ++j) sc[j] = __uint_as_float(w[j]);
  } else if constexpr (S == ScaleKind::F16) {
    if constexpr (NG == 1) {
      sc[0] = half2_bits(w[0]).x;
    } else {
#pragma unroll
      for (int j = 0; j < NG / 2; ++j) {
        const float2 v = half2_bits(w[j]);
        sc[2 * j] = v.x, sc[2 * j + 1] = v.y;
      }
    }
  } else if constexpr (S == ScaleKind::E4M3) {
    const uint32_t v = w[0];
    const float2 lo = __half22float2(__half2(__nv_cvt_fp8x2_to_halfraw2(__nv_fp8x2_storage_t(v & 0xffffu), __NV_E4M3)));
    const float2 hi = __half22float2(__half2(__nv_cvt_fp8x2_to_halfraw2(__nv_fp8x2_storage_t(v >> 16), __NV_E4M3)));
    sc[0] = lo.x, sc[1] = lo.y, sc[2] = hi.x, sc[3] = hi.y;
  } else if constexpr (S == ScaleKind::E8M0) {
    sc[0] = e8m0_dev(w[0] & 0xff), sc[1] = e8m0_dev((w[0] >> 8) & 0xff);
  } else {
    const uint32_t v = w[0];
    const float2 dd = half2_bits(w[1]);
    sc[0] = dd.x * float(v & 63), mn[0] = dd.y * float((v >> 8) & 63);
    sc[1] = dd.x * float((v >> 16) & 63), mn[1] = dd.y * float(v >> 24);
  }
}

// Scales of row r (the pointer fetch_span_scales walks).
template <ScaleKind S>
__device__ __forceinline__ const void* scale_row(const DevQuant& d, int r) {
  using T = std::conditional_t<S == ScaleKind::F32, float, std::conditional_t<S == ScaleKind::F16 || S == ScaleKind::Q4K, uint16_t, uint8_t>>;
  return static_cast<const T*>(d.sc) + int64_t(r) * d.sc_row;
}

// The raw scale words of a unit's spans (rows g, g + 8 of the lane), requested with its codes.
template <ScaleKind S, bool Z, int KS, int U>
__device__ __forceinline__ void load_unit_scales(const Gemv4Args& a, int group, int ch, int lane,
                                                 SpanScales<S, Z, KS> (&us)[U]) {
  const int wi = g4_weight(a, group);
  const DevQuant& d = a.w[wi];
  const int g = lane >> 2, nkc = a.kp >> 6;
  const int r0 = min((group - a.group_start[wi]) * 16 + g, d.rows - 1), r1 = min(r0 + 8, d.rows - 1);
  const void* srow0 = scale_row<S>(d, r0);
  const void* srow1 = scale_row<S>(d, r1);
#pragma unroll
  for (int sp = 0; sp < U; ++sp) {
    const int kc = ch * U + sp;
    if (kc < nkc) {
      fetch_span_scales<S, Z, KS>(d, r0, srow0, kc, 0, us[sp]);
      fetch_span_scales<S, Z, KS>(d, r1, srow1, kc, 1, us[sp]);
    }
  }
}

// One unit: U spans of 64 k for the lane's rows g, g + 8; acc gets the block-scaled sums (C layout).
// IC: integer codes (decode_int; Z adds the int4 zero point to the bias), else table lookup.
// ONE (a single token): B column 0 is x's hi half and column 1 its lo half (lanes g = 1 read the lo
// words), so one mma per k step gives both products; acc[0] / acc[2] hold the sums (acc[1] / acc[3]
// unused). Column by column the mma adds the same terms in the same order as the two-mma form, so the
// result is the same to the bit (q4_k's block sums of x add in another order: within f32 rounding).
template <ScaleKind S, bool Z, bool IC, int KS, int U, bool ONE>
__device__ __forceinline__ void unit_dot(const Gemv4Args& a, int ch, int lane, const uint4 (&u)[U],
                                         const SpanScales<S, Z, KS> (&us)[U], const uint32_t* xs,
                                         uint32_t lane_tbl, float (&acc)[4]) {
  constexpr bool kMin = S == ScaleKind::Q4K;
  constexpr int NG = 4 / KS;  // scale blocks per span
  const int g = lane >> 2, tq = lane & 3, nkc = a.kp >> 6;
  // B column g is token g; lanes past the last token read token 0 (their C columns are never stored).
  // ONE: column 1 is token 0's lo half (word 2 of the lane's 4), the other columns its hi half.
  const uint32_t* xrow = ONE ? xs + tq * 4 + (g == 1 ? 2 : 0) : xs + size_t(g < a.ntok ? g : 0) * a.tstride + tq * 4;
#pragma unroll
  for (int sp = 0; sp < U; ++sp) {
    const int kc = ch * U + sp;
    if (kc >= nkc) break;
    float s0[NG], m0[NG], s1[NG], m1[NG];
    __half2 b0[NG], b1[NG];
    decode_span_scales<S, Z, KS>(us[sp], 0, s0, m0);
    decode_span_scales<S, Z, KS>(us[sp], 1, s1, m1);
#pragma unroll
    for (int j = 0; j < NG; ++j) {
      b0[j] = b1[j] = __float2half2_rn(a.int_bias);
      if constexpr (Z) {
        b0[j] = __hadd2(b0[j], __half2half2(__ushort2half_rn((us[sp].z[0] >> (8 * j)) & 0xff)));
        b1[j] = __hadd2(b1[j], __half2half2(__ushort2half_rn((us[sp].z[1] >> (8 * j)) & 0xff)));
      }
    }
    const uint32_t words[4] = {u[sp].x, u[sp].y, u[sp].z, u[sp].w};
    // Separate accumulators for the hi and lo halves of x: two short mma dependency chains.
    float ch[4] = {0.f, 0.f, 0.f, 0.f}, cl[4] = {0.f, 0.f, 0.f, 0.f}, cs[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
    for (int st = 0; st < 4; ++st) {
      const int j = st / KS;
      uint32_t A[4];
      if constexpr (IC) decode_int(words[st], b0[j], b1[j], A);
      else decode_tbl(words[st], lane_tbl, A);
      const uint32_t ones[4] = {0x3C003C00u, 0x3C003C00u, 0x3C003C00u, 0x3C003C00u};
      if constexpr (ONE) {
        const uint2 b = *reinterpret_cast<const uint2*>(xrow + (kc * 4 + st) * 16);
        mma16816(ch, A, b.x, b.y);
        if constexpr (kMin) mma16816(cs, ones, b.x, b.y);  // block sums of x, for q4_k's minimum
      } else {
        const uint4 b = *reinterpret_cast<const uint4*>(xrow + (kc * 4 + st) * 16);
        mma16816(ch, A, b.x, b.y);
        mma16816(cl, A, b.z, b.w);
        if constexpr (kMin) {
          mma16816(cs, ones, b.x, b.y);
          mma16816(cs, ones, b.z, b.w);
        }
      }
      if (ONE && (st + 1) % KS == 0) {
        acc[0] = fmaf(ch[0] + ch[1], s0[j], acc[0]);
        acc[2] = fmaf(ch[2] + ch[3], s1[j], acc[2]);
        if constexpr (kMin) {
          acc[0] = fmaf(-(cs[0] + cs[1]), m0[j], acc[0]);
          acc[2] = fmaf(-(cs[2] + cs[3]), m1[j], acc[2]);
        }
#pragma unroll
        for (int q = 0; q < 4; ++q) ch[q] = cs[q] = 0.f;
      } else if ((st + 1) % KS == 0) {
        acc[0] = fmaf(ch[0] + cl[0], s0[j], acc[0]);
        acc[1] = fmaf(ch[1] + cl[1], s0[j], acc[1]);
        acc[2] = fmaf(ch[2] + cl[2], s1[j], acc[2]);
        acc[3] = fmaf(ch[3] + cl[3], s1[j], acc[3]);
        if constexpr (kMin) {
          acc[0] = fmaf(-cs[0], m0[j], acc[0]);
          acc[1] = fmaf(-cs[1], m0[j], acc[1]);
          acc[2] = fmaf(-cs[2], m1[j], acc[2]);
          acc[3] = fmaf(-cs[3], m1[j], acc[3]);
        }
#pragma unroll
        for (int q = 0; q < 4; ++q) ch[q] = cl[q] = cs[q] = 0.f;
      }
    }
  }
}

template <ScaleKind S, bool Z, bool IC, int KS, int U, bool ONE>
__global__ void __launch_bounds__(kThreads) gemv4_kernel(const __grid_constant__ Gemv4Args a) {
  extern __shared__ uint4 smem4[];
  __shared__ float red[32];
  __shared__ int xe_s[8];
  uint32_t* tbl = reinterpret_cast<uint32_t*>(smem4);  // table formats: the replicated f16-pair table
  uint32_t* xs_smem = tbl + (IC ? 0 : kTableWords);
  const uint32_t lane_tbl = uint32_t(__cvta_generic_to_shared(tbl)) + 4 * (threadIdx.x & 31);
  const uint32_t* xs = a.xg ? a.xg : xs_smem;
  float* part = reinterpret_cast<float*>(xs_smem + (a.xg ? 0 : size_t(a.ntok) * a.tstride));
  const int g0 = int(int64_t(blockIdx.x) * a.total / gridDim.x), g1 = int(int64_t(blockIdx.x + 1) * a.total / gridDim.x);
  const int units = (g1 - g0) * a.nch;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int u0 = warp * units / kWarps, u1 = (warp + 1) * units / kWarps;
  uint4 cur[U], nxt[U];
  SpanScales<S, Z, KS> scur[U], snxt[U];
  int grp = g0 + u0 / a.nch, chn = u0 % a.nch;  // (row group, unit) of u, advanced incrementally
  if (u0 < u1) {  // codes and scales do not depend on the previous kernel
    load_unit<U>(a, grp, chn, lane, cur);
    load_unit_scales<S, Z, KS, U>(a, grp, chn, lane, scur);
  }
  if constexpr (!IC) {  // made before the staging, whose barriers publish it
    // Thread t fills 16 of the 32 copies of entry t / 2 (its value by the register lookup of byte t / 2).
    static_assert(kThreads * 16 == kTableWords, "two threads per table entry");
    uint32_t lo[4], hi[4], v[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) lo[i] = a.lut_lo[i], hi[i] = a.lut_hi[i];
    decode_lut(threadIdx.x >> 1, lo, hi, v);
    uint4* dst = reinterpret_cast<uint4*>(tbl + 16 * threadIdx.x);
#pragma unroll
    for (int i = 0; i < 4; ++i) dst[i] = make_uint4(v[0], v[0], v[0], v[0]);
  }
  pdl_wait();
  pdl_launch_dependents();
  if (!a.xg) {
    stage_tokens(a, xs_smem, xe_s, red);
  } else if (threadIdx.x < a.ntok) {
    xe_s[threadIdx.x] = a.xexp_g[threadIdx.x];
  }
  __syncthreads();
  // One unit: request the unit after it into `next`, multiply `buf`, store the unit sums
  // part[(u * 16 + row) * ntok + token] (lane (g, tq) holds rows g, g + 8, tokens 2tq, 2tq + 1).
  auto step = [&](int u, const uint4 (&buf)[U], const SpanScales<S, Z, KS> (&sbuf)[U], uint4 (&next)[U],
                  SpanScales<S, Z, KS> (&snext)[U]) {
    const int ngrp = chn + 1 == a.nch ? grp + 1 : grp, nchn = chn + 1 == a.nch ? 0 : chn + 1;
    if (u + 1 < u1) {
      load_unit<U>(a, ngrp, nchn, lane, next);
      load_unit_scales<S, Z, KS, U>(a, ngrp, nchn, lane, snext);
    }
    float acc[4] = {0.f, 0.f, 0.f, 0.f};
    unit_dot<S, Z, IC, KS, U, ONE>(a, chn, lane, buf, sbuf, xs, lane_tbl, acc);
    grp = ngrp;
    chn = nchn;
    const int g = lane >> 2, t0 = 2 * (lane & 3);
    float* pu = part + size_t(u) * 16 * a.ntok;
    if (t0 < a.ntok) {
      pu[g * a.ntok + t0] = acc[0];
      pu[(g + 8) * a.ntok + t0] = acc[2];
    }
    if (t0 + 1 < a.ntok) {
      pu[g * a.ntok + t0 + 1] = acc[1];
      pu[(g + 8) * a.ntok + t0 + 1] = acc[3];
    }
  };
  for (int u = u0; u < u1; u += 2) {  // two buffers in turn (no register copies)
    step(u, cur, scur, nxt, snxt);
    if (u + 1 < u1) step(u + 1, nxt, snxt, cur, scur);
  }
  __syncthreads();
  const int outs = (g1 - g0) * 16 * a.ntok;
  for (int i = threadIdx.x; i < outs; i += blockDim.x) {
    const int t = i % a.ntok, rr = (i / a.ntok) % 16, gl = i / (16 * a.ntok);
    float v = 0.f;
    for (int ch = 0; ch < a.nch; ++ch) v += part[(size_t(gl * a.nch + ch) * 16 + rr) * a.ntok + t];
    const int group = g0 + gl, wi = g4_weight(a, group);
    const DevQuant& d = a.w[wi];
    const int row = (group - a.group_start[wi]) * 16 + rr;
    if (row >= d.rows) continue;
    if (d.row_scale) v *= d.row_scale[row];
    v = v * d.gscale * ldexpf(1.f, xe_s[t]);
    float* y = a.y[wi] + size_t(t) * d.rows + row;
    *y = a.accumulate ? *y + v : v;
  }
}

// Once-per-launch input staging in global memory and its per-token exponents (grow-only scratch).
uint32_t* global_stage4(size_t words, int** xexp) {
  static DeviceScratch buf[16], ex[16];
  *xexp = static_cast<int*>(scratch_for_current_device(ex).get(8 * sizeof(int)));
  return static_cast<uint32_t*>(scratch_for_current_device(buf).get(std::max(words * 4, size_t(4) << 20)));
}


template <ScaleKind S, bool Z, bool IC, int KS, int U>
void launch4(Gemv4Args a, int64_t stage_words, cudaStream_t s) {
  auto kernel = a.ntok == 1 ? gemv4_kernel<S, Z, IC, KS, U, true> : gemv4_kernel<S, Z, IC, KS, U, false>;
  const void* kp = reinterpret_cast<const void*>(kernel);
  a.nch = (a.kp / 64 + U - 1) / U;
  // Shared memory: staged input (unless in global memory) + unit sums of the block's groups.
  const size_t in_bytes = (a.xg ? 0 : size_t(stage_words) * 4) + (IC ? 0 : kTableWords * 4);
  const int64_t per_group = int64_t(a.nch) * 16 * a.ntok;  // unit sums of one row group
  auto smem_for = [&](int64_t gpb) { return in_bytes + size_t(gpb * per_group) * 4; };
  // Blocks own whole row groups (their epilogue adds the unit sums in order). Use every resident slot,
  // then spread the groups evenly: each block gets ceil(total / capacity) groups at most, so a wave
  // ends together (a block with one group more than the rest would set the kernel's time).
  const int64_t guess = std::max<int64_t>(
      1, std::min<int64_t>((a.total + device_sm_count() - 1) / device_sm_count(), 8192 / per_group));
  const int64_t capacity = int64_t(device_sm_count()) * resident_blocks(kp, kThreads, smem_for(guess));
  int64_t gpb = (a.total + capacity - 1) / capacity;
  gpb = std::max<int64_t>(1, std::min<int64_t>(gpb, 8192 / per_group));  // unit sums <= 32 KB per block
  const int blocks = int((a.total + gpb - 1) / gpb);
  const size_t smem = smem_for(gpb);
  if (smem + 1024 > size_t(device_smem_optin()))
    throw Error("quant_gemv: " + std::to_string(smem) + " bytes of shared memory needed (input " + std::to_string(a.cols) +
                " x " + std::to_string(a.ntok) + " tokens)");
  (void)resident_blocks(kp, kThreads, smem);  // sets the shared-memory opt-in for this size
  launch_pdl(kernel, dim3(unsigned(blocks)), dim3(kThreads), smem, s, a);
}

template <ScaleKind S, bool Z, bool IC, int KS>
void pick_unit(const Gemv4Args& a, int64_t stage_words, cudaStream_t s) {
  // The largest unit (4, 2 or 1 spans) that still gives every warp of a full wave 2 units: small
  // matrices need more warps per row group in flight, large ones fewer, longer units.
  const int64_t spans = int64_t(a.total) * (a.kp / 64), want = int64_t(device_sm_count()) * kWarps * 2;
  if (spans >= 4 * want) launch4<S, Z, IC, KS, 4>(a, stage_words, s);
  else if (spans >= 2 * want) launch4<S, Z, IC, KS, 2>(a, stage_words, s);
  else launch4<S, Z, IC, KS, 1>(a, stage_words, s);
}

template <ScaleKind S, bool Z, bool IC>
void pick_ks(const Gemv4Args& a, int block, int64_t stage_words, cudaStream_t s) {
  if (block >= 64) pick_unit<S, Z, IC, 4>(a, stage_words, s);
  else if (block == 32) pick_unit<S, Z, IC, 2>(a, stage_words, s);
  else pick_unit<S, Z, IC, 1>(a, stage_words, s);
}

}  // namespace

void quant_gemv4(std::span<const CudaQuantWeight* const> ws, const LinearInputDev& in, int n_tokens,
                 std::span<float* const> ys, bool accumulate, cudaStream_t s) {
  for (size_t i0 = 0; i0 < ws.size(); i0 += kMaxW) {
    const size_t nw = std::min<size_t>(kMaxW, ws.size() - i0);
    const CudaQuantWeight& w0 = *ws[i0];
    Gemv4Args a;
    a.nw = int(nw);
    a.in = in;
    a.ntok = n_tokens;
    a.cols = int(w0.cols);
    a.kp = w0.dev.kp;
    a.tstride = a.kp + 16;
    a.accumulate = accumulate;
    for (int i = 0; i < 4; ++i) a.lut_lo[i] = w0.desc.lut_lo[i], a.lut_hi[i] = w0.desc.lut_hi[i];
    a.int_bias = 1024.f - w0.desc.lut[0];
    a.group_start[0] = 0;
    for (size_t i = 0; i < nw; ++i) {
      const CudaQuantWeight& w = *ws[i0 + i];
      a.w[i] = w.dev;
      a.y[i] = ys[i0 + i];
      a.group_start[i + 1] = a.group_start[i] + int((w.rows + 15) / 16);
    }
    a.total = a.group_start[nw];
    const int64_t stage_words = int64_t(n_tokens) * a.tstride;
    // Stage once per launch in global memory instead of per block when the input would crowd out the rest
    // of the block's shared memory: the table (table formats, 32 KB) and up to 32 KB of unit sums must still
    // fit under the device's opt-in limit (96 KB of input on an H100; ~34 KB on 99 KB parts such as sm_89).
    const bool table = !w0.desc.int_codes;
    const int64_t stage_limit =
        std::min<int64_t>(96 * 1024, int64_t(device_smem_optin()) - (table ? kTableWords * 4 : 0) - 33 * 1024);
    if (stage_words * 4 > stage_limit) {
      int* xexp = nullptr;
      uint32_t* g = global_stage4(size_t(stage_words), &xexp);
      stage4_global_kernel<<<1, 512, 0, s>>>(a, g, xexp);
      QF_CUDA(cudaGetLastError());
      a.xg = g;
      a.xexp_g = xexp;
    }
    const int block = 1 << w0.dev.sc_shift;
    switch (w0.format) {
      case QuantFormat::NF4:
      case QuantFormat::FP4: pick_ks<ScaleKind::F32, false, false>(a, block, stage_words, s); break;
      case QuantFormat::NVFP4: pick_unit<ScaleKind::E4M3, false, false, 1>(a, stage_words, s); break;
      case QuantFormat::MXFP4: pick_unit<ScaleKind::E8M0, false, false, 2>(a, stage_words, s); break;
      case QuantFormat::INT4: pick_ks<ScaleKind::F16, true, true>(a, block, stage_words, s); break;
      case QuantFormat::Q4_0: pick_unit<ScaleKind::F16, false, true, 2>(a, stage_words, s); break;
      case QuantFormat::Q4_K: pick_unit<ScaleKind::Q4K, false, true, 2>(a, stage_words, s); break;
      default: throw Error("quant_gemv: format " + std::string(quant_traits(w0.format).name) + " is not a 4-bit format");
    }
  }
}

}  // namespace qforge::cuda
