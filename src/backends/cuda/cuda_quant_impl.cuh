// backends/cuda/cuda_quant_impl.cuh — internal to the cuda_quant*.cu files: the repacked device layout
// of a quantized weight (CudaQuantWeight), the plain-old-data view the kernels take (DevQuant) and the
// per-format element/scale decoders shared by the decode GEMV and the prefill dequantize kernel. 8-bit
// codes are row-major (Kp bytes a row), 4-bit codes mma tiles. Layout documented in docs/cuda-quant.md.
#pragma once
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <cstdint>

#include "backends/cuda/cuda_quant.cuh"

namespace qforge::cuda {

// How an element's code becomes a value (before its block scale).
enum class ElemKind : uint8_t { Lut4, Int8, E4M3, E5M2 };
// The per-quad (4 consecutive k) scale source.
// F32Min: an f32 (scale, minimum) pair per block, value = scale * code - minimum (q4_1 / q5_1 with the
// minimum negated, q5_k, q2_k: both exact in f32 as the reference forms them).
enum class ScaleKind : uint8_t { None, F32, F16, E4M3, E8M0, Q4K, F32Min };

// Kernel view of a weight in the fast layout.
// 8-bit codes: row-major, one byte per element, Kp = roundup(K, 128) bytes per row (zero codes in the
// padding). The GEMV walks a row in spans of Q quads per lane (128*Q elements: Q = 4 for full spans,
// then the halving tail); lane l's quad m is k = span + 128 m + 4 l, one coalesced 4-byte load.
// 4-bit codes ("mma tile" layout): rows padded to 16, K to Kp = roundup(K, 64); tile (row group rg of 16
// rows, k chunk kc of 64) is 512 bytes at (rg * Kp/64 + kc) * 512, lane l's 16 bytes at l * 16: word s
// (k step of 16) holds, nibble i (low first), the A-fragment element a_i of mma.m16n8k16 for that lane:
// row 16 rg + l/4 + 8 ((i >> 1) & 1), k = 64 kc + 16 s + 2 (l % 4) + (i & 1) + 8 (i >> 2); for the
// integer-coded formats (FormatDesc::int_codes) nibble n holds a_i with i = tile4_elem(n), the pair
// order in which one shift + mask yields (a_2j, a_2j+1) from nibbles j and j + 4.
struct DevQuant {
  const uint8_t* codes = nullptr;
  int64_t code_row_bytes = 0;  // 8-bit: Kp bytes per row; 4-bit: Kp / 2 (bytes per row, tiles interleave rows)
  int rows = 0, cols = 0, kp = 0;
  const void* sc = nullptr;    // [rows, sc_row] block scales (type by ScaleKind; F32Min: float2 (scale, min))
  int sc_row = 0, sc_shift = 0;  // blocks per row; log2(block) along k
  const uint8_t* zeros = nullptr;  // int4: [rows, sc_row] zero points (u8)
  const __half2* q4k_d = nullptr;  // q4_k: [rows, kp/256] (d, dmin)
  const float* row_scale = nullptr;  // int8 SCB / fp8 per channel: [rows]
  float gscale = 1.f;          // applied at the end (fp8 per tensor scale, nvfp4 weight_scale_2, int8 1/127)
};

struct FormatDesc {
  int bits = 4;
  ElemKind elem = ElemKind::Lut4;
  ScaleKind scale = ScaleKind::None;
  bool zero = false;  // int4: value = lut[c] - zero
  float lut[16] = {};
  // The LUT as f16 split into byte tables for the decode GEMV's byte-permute lookup: byte b of lut_lo[j]
  // is the low byte of f16(lut[4 j + b]), lut_hi the high byte. Exact for every table but nf4 / fp4
  // (whose f16 values are within 2^-12 relative; bitsandbytes itself computes in bf16, 2^-9).
  uint32_t lut_lo[4] = {}, lut_hi[4] = {};
  // q4_0 / int4 / q4_k: codes are integers (lut[c] = c + bias), decoded arithmetically (1024 + c as f16).
  bool int_codes = false;
};

// Fragment element held by nibble n of a 4-bit tile word (see DevQuant).
__host__ __device__ inline int tile4_elem(int n, bool int_codes) {
  return int_codes ? (n < 4 ? 2 * n : 2 * (n - 4) + 1) : n;
}

struct CudaQuantWeight {
  QuantFormat format = QuantFormat::None;
  QuantParams params;
  int64_t rows = 0, cols = 0;
  FormatDesc desc;
  DevQuant dev;  // fast layout (valid when !generic)
  // Generic path (bnb 4-bit whose blocks straddle quads: K % 4 != 0): flat codes as uploaded and the
  // expanded f32 absmax per flat block.
  bool generic = false;
  const uint8_t* flat_codes = nullptr;
  const float* flat_absmax = nullptr;
  int block = 0;
  // Every device allocation of this weight, freed (and un-accounted) by the destructor.
  void* allocs[6] = {};
  size_t alloc_bytes[6] = {};
  size_t total_bytes = 0;
  ~CudaQuantWeight();
};

// ---- device decoders ----

__device__ __forceinline__ float e8m0_dev(uint32_t e) {
  if (e == 0xFF) return __int_as_float(0x7fc00000);
  if (e == 0) return __int_as_float(0x00400000);  // 2^-127
  return __int_as_float(int(e << 23));
}
__device__ __forceinline__ float e4m3_dev(uint32_t c) {
  const __half_raw h = __nv_cvt_fp8_to_halfraw(__nv_fp8_storage_t(c), __NV_E4M3);
  return __half2float(__half(h));
}
// Four 8-bit codes of one word -> four floats.
template <ElemKind E>
__device__ __forceinline__ void decode8x4(uint32_t w, float v[4]) {
  if constexpr (E == ElemKind::Int8) {
    // Magic-number conversion: 0x4B000000 | (c ^ 0x80) = 2^23 + c + 128, exact.
    const uint32_t u = w ^ 0x80808080u;
#pragma unroll
    for (int e = 0; e < 4; ++e)
      v[e] = __int_as_float(int(__byte_perm(u, 0x4B000000u, 0x7650u + e))) - 8388736.f;
  } else {
    const __nv_fp8x2_storage_t lo = __nv_fp8x2_storage_t(w & 0xffffu), hi = __nv_fp8x2_storage_t(w >> 16);
    constexpr __nv_fp8_interpretation_t kI = E == ElemKind::E4M3 ? __NV_E4M3 : __NV_E5M2;
    const float2 a = __half22float2(__half2(__nv_cvt_fp8x2_to_halfraw2(lo, kI)));
    const float2 b = __half22float2(__half2(__nv_cvt_fp8x2_to_halfraw2(hi, kI)));
    v[0] = a.x; v[1] = a.y; v[2] = b.x; v[3] = b.y;
  }
}

// Block scale (and affine minimum, q4_k / F32Min: value = s * code - mn) of the quad at element k of row r.
template <ScaleKind S>
__device__ __forceinline__ void quad_scale(const DevQuant& d, int r, int k, float& s, float& mn) {
  mn = 0.f;
  if constexpr (S == ScaleKind::None) {
    s = 1.f;
  } else {
    const int64_t i = int64_t(r) * d.sc_row + (k >> d.sc_shift);
    if constexpr (S == ScaleKind::F32) s = __ldg(static_cast<const float*>(d.sc) + i);
    else if constexpr (S == ScaleKind::F16) s = __half2float(__ldg(static_cast<const __half*>(d.sc) + i));
    else if constexpr (S == ScaleKind::E4M3) s = e4m3_dev(__ldg(static_cast<const uint8_t*>(d.sc) + i));
    else if constexpr (S == ScaleKind::E8M0) s = e8m0_dev(__ldg(static_cast<const uint8_t*>(d.sc) + i));
    else if constexpr (S == ScaleKind::F32Min) {
      const float2 v = __ldg(static_cast<const float2*>(d.sc) + i);
      s = v.x;
      mn = v.y;
    } else {  // Q4K: u16 (sc | m << 8) per 32, (d, dmin) per 256
      const uint16_t sm = __ldg(static_cast<const uint16_t*>(d.sc) + i);
      const float2 dd = __half22float2(__ldg(d.q4k_d + int64_t(r) * (d.kp >> 8) + (k >> 8)));
      s = dd.x * float(sm & 63);
      mn = dd.y * float(sm >> 8);
    }
  }
}

// Host helpers (cuda_quant_upload.cu).
FormatDesc format_desc(QuantFormat f);

// Grow-only device scratch (accounted as Scratch on cuda:0) for the GEMVs' once-per-launch input
// staging. Held in function-local statics: the first use (outside graph capture) allocates it, and
// the destructor frees it at exit, before the CUDA runtime's own teardown (registered earlier).
struct DeviceScratch {
  void* p = nullptr;
  size_t cap = 0;
  void* get(size_t bytes);
  ~DeviceScratch();
};
// One DeviceScratch per GPU (a model split over GPUs stages on each): the current device's entry.
DeviceScratch& scratch_for_current_device(DeviceScratch (&per_device)[16]);

// The tensor-core decode GEMV of the 4-bit formats (cuda_quant_gemv4.cu); quant_gemv hands it every
// 4-bit weight in the tile layout (same format and cols per call, checked by the caller).
void quant_gemv4(std::span<const CudaQuantWeight* const> ws, const LinearInputDev& in, int n_tokens,
                 std::span<float* const> ys, bool accumulate, cudaStream_t s);

}  // namespace qforge::cuda
