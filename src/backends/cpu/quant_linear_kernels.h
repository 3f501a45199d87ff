// src/backends/cpu/quant_linear_kernels.h — private interface between the quantized-linear driver
// (quant_linear.cpp: ISA choice, activation preparation, threading, tails) and the per-ISA SIMD
// kernels (quant_linear_avx2.cpp, quant_linear_avx512.cpp). The kernels read the QuantWeight buffers
// in place (no repacked copy) through the plain pointers of KernelArgs.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <type_traits>
#include <vector>

#include "qforge/dtype.h"
#include "qforge/quant.h"
#include "quant/quant_codecs.h"

namespace qforge::cpu_quant {

enum class Isa : uint8_t { Scalar, Avx2, Avx512 };
std::string_view isa_name(Isa isa);
Isa best_isa();             // what this CPU runs: avx512 (f/bw/vl/dq/vnni) > avx2 (+fma+f16c) > scalar, capped by isa_cap()
Isa isa_cap();              // QFORGE_CPU_ISA=scalar|avx2|avx512 (A/B runs, debugging); unset: no cap
bool isa_supported(Isa isa);

// Activation precision of the GGUF integer-dot path (int8_act_supported: q4_0, q8_0, q4_1, q5_0, q5_1, q4_k,
// q5_k, q6_k; q3_k at avx512): the activation row is quantized to int8 per block of 32 (scale amax/127, round to
// nearest) like llama.cpp's q8 rows.
enum class ActMode : uint8_t { F32, Int8 };

struct KernelArgs {
  QuantFormat format = QuantFormat::None;
  int64_t rows = 0, cols = 0;
  int block = 0;                 // nf4/fp4 absmax block, int4 group
  bool double_quant = false, per_channel = false;
  const uint8_t* data = nullptr;
  double data_bytes_per_weight = 0;  // bytes of `data` per weight (for software prefetch)
  const uint8_t* scales = nullptr;   // raw bytes of QuantWeight::scales
  const float* scales2 = nullptr;
  const uint32_t* zeros = nullptr;   // int4 qzeros
  float offset = 0;                  // nf4/fp4 double quant
  const float* lut16 = nullptr;      // nf4 / fp4 / e2m1 values
  const float* dmap8 = nullptr;      // bnb dynamic map (double quant)
  const float* e4m3 = nullptr;       // 256 e4m3 values (nvfp4 block scales)
  // Activations in kernel order: [n_tokens, ldk], zero padded past cols. For nf4/fp4/nvfp4/mxfp4 each
  // full chunk of 32 holds the 16 even then the 16 odd elements (the nibble order of the codes). With
  // wide = C (128 at avx512, 64 at avx2; cols % C == 0; nf4/fp4 with a power-of-two block >= 64, or
  // nvfp4 / mxfp4) each chunk of C holds, at (C / 8) q + j, element 8 j + (q ^ 1) (nf4/fp4: high nibble
  // first) or 8 j + q (nvfp4 / mxfp4: low nibble first): the order of a C/2-byte code load whose dword
  // lanes are shifted by 4 q (DecBnb4x128 / DecE2m1x128, DecBnb4x64 / DecE2m1x64). q4_k: wide = 256 (avx512,
  // one super-block) or 64 (avx2, one group of 64), in the orders DecQ4_Kx256 / DecQ4_Kx64 describe. q6_k:
  // wide = 256 / 64 in plain order (DecQ6_Kx256 / DecQ6_Kx64).
  int wide = 0;
  const float* xk = nullptr;
  int64_t ldk = 0, n_tokens = 0;
  // Int8 activations (ActMode::Int8): xq [n_tokens, ldk] int8 in blocks of 32 (q4_0 at avx512: each
  // pair of blocks stored as A0-15 B0-15 A16-31 B16-31, the order of the unpacked nibbles in one zmm;
  // natural order otherwise), xq_scale [n_tokens, ldk/32] = d_x (amax/127), xq_dsum [n_tokens, ldk/32]
  // = d_x * sum of the block's int8 (see quantize_act_row).
  const int8_t* xq = nullptr;
  const float* xq_scale = nullptr;
  const float* xq_dsum = nullptr;
  ActMode act = ActMode::F32;
  int64_t k_main = 0;  // columns [0, k_main) done by the kernel (multiple of 32); the caller adds the tail
  float* y = nullptr;  // y[t * rows + r]
};

// An e8m0 (MX block scale) byte as a float: 2^(e - 127); e = 0 is 2^-127 (subnormal), e = 255 NaN.
inline float e8m0_value(uint8_t e) {
  if (e == 0xFF) return __builtin_nanf("");
  const uint32_t bits = e ? uint32_t(e) << 23 : 0x00400000u;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// The GGUF block (quant_detail::BlockQ4_K, BlockQ5_0, BlockQ6_K, ...: QK weights each) holding column k of
// row r (rows are whole blocks).
template <class Block, int QK>
inline const uint8_t* gguf_block(const KernelArgs& a, int64_t r, int64_t k) {
  return a.data + (r * (a.cols / QK) + k / QK) * int64_t(sizeof(Block));
}
// Q2_K / Q3_K: the 32 weights at k (k % 32 == 0) are one quarter of a 128-weight half and two 16-weight
// sub-blocks. Their low two bits are bits 2 j4 of 32 bytes of qs; Q3_K's third bit is bit 4 n + j4 of hmask[l].
// s0 / s1 and m0 / m1 are the two sub-blocks' scales and minimums (Q3_K: minimum 0, code 0..7 with offset 4).
struct K23Chunk {
  const uint8_t* qs;      // 32 bytes
  const uint8_t* hmask;   // 32 bytes (Q3_K)
  int shift, hbit;        // 2 j4, 4 n + j4
  float s0, s1, m0, m1;
};
template <bool Q3>
inline K23Chunk k23_chunk(const KernelArgs& a, int64_t r, int64_t k, float (*half)(const uint8_t*)) {
  const int j = int(k % 256), n = j / 128, j4 = (j % 128) / 32, s = j / 16;
  K23Chunk c;
  c.shift = 2 * j4;
  c.hbit = 4 * n + j4;
  if constexpr (Q3) {
    const uint8_t* blk = gguf_block<quant_detail::BlockQ3_K, 256>(a, r, k);
    const float d = half(blk + offsetof(quant_detail::BlockQ3_K, d));
    const uint8_t* sc = blk + offsetof(quant_detail::BlockQ3_K, scales);
    c.qs = blk + offsetof(quant_detail::BlockQ3_K, qs) + 32 * n;
    c.hmask = blk + offsetof(quant_detail::BlockQ3_K, hmask);
    c.s0 = d * float(quant_detail::q3_k_scale(sc, s));
    c.s1 = d * float(quant_detail::q3_k_scale(sc, s + 1));
    c.m0 = c.m1 = 0.0f;
  } else {
    const uint8_t* blk = gguf_block<quant_detail::BlockQ2_K, 256>(a, r, k);
    const float d = half(blk + offsetof(quant_detail::BlockQ2_K, d)), dmin = half(blk + offsetof(quant_detail::BlockQ2_K, dmin));
    c.qs = blk + offsetof(quant_detail::BlockQ2_K, qs) + 32 * n;
    c.hmask = nullptr;
    const uint8_t* sm = blk + offsetof(quant_detail::BlockQ2_K, scales);  // scale | min << 4 per 16
    c.s0 = d * float(sm[s] & 15);
    c.s1 = d * float(sm[s + 1] & 15);
    c.m0 = dmin * float(sm[s] >> 4);
    c.m1 = dmin * float(sm[s + 1] >> 4);
  }
  return c;
}
inline const uint8_t* q4_k_block(const KernelArgs& a, int64_t r, int64_t k) {
  return gguf_block<quant_detail::BlockQ4_K, 256>(a, r, k);
}

// Software prefetch (into L1) of the codes of rows [r, r + n), columns [k0, k0 + kn): the quantized
// GEMVs are not bound by DRAM, so the hardware prefetcher alone leaves the memory idle between rows.
inline void prefetch_rows(const KernelArgs& a, int64_t r, int n, int64_t k0, int64_t kn) {
  const double bpw = a.data_bytes_per_weight;
  for (int i = 0; i < n; ++i) {
    const char* p = reinterpret_cast<const char*>(a.data) + int64_t(double((r + i) * a.cols + k0) * bpw);
    for (int64_t off = 0; off < int64_t(double(kn) * bpw); off += 64) __builtin_prefetch(p + off, 0, 3);
  }
}

// Rows [r0, r1) for every token: y = row_mult * sum over k < k_main. int4 needs r0, r1 multiples of
// 16 (avx512) / 8 (avx2) except r1 == rows when rows is such a multiple. Return false if the format
// has no kernel at this ISA (the caller then uses the generic tile path).
bool rows_avx2(const KernelArgs& a, int64_t r0, int64_t r1);
bool rows_avx512(const KernelArgs& a, int64_t r0, int64_t r1);

// One activation row of K (K % 32 == 0) to int8 blocks of 32: q = round-half-even(x * (1/(amax/127)))
// computed in f32; the block scale d is amax/127 rounded to f16 (act_block_scale), so an activation
// block is exactly a GGUF q8_0 block, as llama.cpp makes it; dsum = d * sum(q). `pairs` stores block
// pairs in the avx512 q4_0 order. All three versions give bit-identical results.
inline float act_block_scale(float amax) { return f16_to_f32(f32_to_f16(amax / 127.0f)); }
void quantize_act_row_scalar(const float* x, int64_t K, bool pairs, int8_t* q, float* d, float* dsum);
void quantize_act_row_avx2(const float* x, int64_t K, int8_t* q, float* d, float* dsum);
void quantize_act_row_avx512(const float* x, int64_t K, bool pairs, int8_t* q, float* d, float* dsum);

// The int8 activation rows of n tokens (quantize_act_row_* at `isa`), in a per-thread buffer reused
// across calls (a decode step runs ~150 linears; no allocation each). Valid until the thread's next call.
struct Int8Act {
  std::vector<int8_t> q;
  std::vector<float> d, dsum;  // [n, K/32]
};
Int8Act& quantize_act(const float* x, int64_t n, int64_t K, bool q4_pairs, Isa isa);

// Test / bench hook: run quant_linear_cpu's fast path at an explicit ISA level and activation mode
// (Isa::Scalar = the generic tile path). Throws qforge::Error if the CPU lacks the ISA.
void quant_linear_cpu_isa(const QuantWeight& w, const float* x, int64_t n_tokens, float* y, Isa isa,
                          ActMode act);
// The activation mode quant_linear_cpu picks: Int8 where a kernel exists and n_tokens < 4 (decode);
// prefill uses the f32 tile kernels, which decode each weight once for all tokens (except K-quant prefill,
// which quant_linear_cpu hands to the int8 kernels of kquant_int8.h before this choice).
ActMode default_act_mode(QuantFormat f, Isa isa, int64_t n_tokens);
bool int8_act_supported(QuantFormat f, Isa isa);
// Output rows that the integer kernels compute together, sharing each activation load (1..4 work).
// Decode on the 2-core Xeon: 2 and 3 tie, 1 is ~6 % slower, 4 ~5 % slower (docs/perf-cpu-quant.md).
inline constexpr int kIntRowGroup = 2;

// What a row group of the int8-activation paths starts from: its first row's bytes, the next group's (to
// prefetch), and token t's activation codes, block scales d_x and block sums d_x sum x.
struct IntGroupIn {
  const uint8_t* row;
  const char* pf;
  const int8_t* xq;
  const float* dx;
  const float* xs;
  IntGroupIn(const KernelArgs& a, int64_t r, int64_t t, int64_t row_bytes, int rows)
      : row(a.data + r * row_bytes), pf(reinterpret_cast<const char*>(row + rows * row_bytes)),
        xq(a.xq + t * a.ldk), dx(a.xq_scale + t * (a.ldk / 32)), xs(a.xq_dsum + t * (a.ldk / 32)) {}
};

// q4_1 / q5_0 / q5_1 as both ISAs' legacy_int_group read them: per block of 32, value d q + c with q unsigned
// (q5: the fifth bit from qh) and c = m (q4_1, q5_1) or -16 d (q5_0).
template <QuantFormat F>
struct LegacyIntBlock {
  using B = std::conditional_t<F == QuantFormat::Q4_1, quant_detail::BlockQ4_1,
                               std::conditional_t<F == QuantFormat::Q5_0, quant_detail::BlockQ5_0, quant_detail::BlockQ5_1>>;
  static constexpr bool kQ5 = F != QuantFormat::Q4_1, kMin = F != QuantFormat::Q5_0;
  static constexpr int64_t kBytes = sizeof(B);
  // c of the block at blk, whose d is d; half reads an f16 at a pointer (each ISA's block_half).
  template <class Half>
  static float offset(const uint8_t* blk, float d, Half half) {
    if constexpr (kMin) return half(blk + offsetof(B, m));
    else return -16.0f * d;
  }
};

// Rows [r0, r1) x int8 activations, groups of kIntRowGroup rows: GroupFn<n>::run(a, r, t, prefetch_next) for a
// group of n rows and one token (each ISA's q4_0 / q8_0 / q4_k / q6_k groups).
template <template <int> class GroupFn>
void int_rows_by(const KernelArgs& a, int64_t r0, int64_t r1) {
  constexpr int G = kIntRowGroup;
  static_assert(G >= 1 && G <= 4, "int_rows_by dispatches groups of 1 to 4 rows");
  for (int64_t r = r0; r < r1; r += G) {
    const int64_t n = r1 - r < G ? r1 - r : G;
    const bool pf = r + G + G <= a.rows;  // the next group lies inside the weight
    for (int64_t t = 0; t < a.n_tokens; ++t) {
      const bool p = pf && t == 0 && n == G;
      switch (n) {
        case 4: GroupFn<4>::run(a, r, t, p); break;
        case 3: GroupFn<3>::run(a, r, t, p); break;
        case 2: GroupFn<2>::run(a, r, t, p); break;
        default: GroupFn<1>::run(a, r, t, p); break;
      }
    }
  }
}

}  // namespace qforge::cpu_quant
