// src/quant/bnb4.cpp — bitsandbytes NF4 / FP4 (spec bitsandbytes.md §1–3): blocks of B consecutive
// elements of the flattened weight (they may straddle rows), fp32 absmax, even element in the high
// nibble, CUDA fast-math reciprocal emulated exactly, optional double quantization of absmax.
// Buffers: data U8 [(n+1)/2]; scales F32 [nb] (or U8 [nb] codes with double quant);
// scales2 F32 [ceil(nb/256)] nested absmax (double quant); offset = mean(absmax) (double quant).
#include <algorithm>
#include <cmath>

#include "core/thread_pool.h"
#include "qforge/status.h"
#include "quant/quant_codecs.h"
#include "quant/quant_formats.h"

namespace qforge::quant_detail {

namespace {
constexpr int kNestedBlock = 256;
}

void quantize_bnb4(const float* x, QuantWeight& q) {
  const int64_t n = q.rows * q.cols, B = q.params.blocksize;
  const int64_t nb = (n + B - 1) / B;
  const bool nf4 = q.format == QuantFormat::NF4;
  q.data = Tensor::empty(DType::U8, {(n + 1) / 2}, MemCategory::Weights, true);
  Tensor absmax = Tensor::empty(DType::F32, {nb}, MemCategory::Weights);
  uint8_t* packed = q.data.data<uint8_t>();
  float* am = absmax.data<float>();
  // Blocks are independent and B is even, so no two blocks share a packed byte: quantize them in
  // parallel (bit-identical to the sequential order).
  ThreadPool::global().parallel_for(nb, 256, [&](int64_t b_begin, int64_t b_end) {
  for (int64_t b = b_begin; b < b_end; ++b) {
    const int64_t e0 = b * B, e1 = std::min(n, e0 + B);
    float a = 0.0f;
    for (int64_t e = e0; e < e1; ++e) a = std::fmax(a, std::fabs(x[e]));  // fmaxf: NaN ignored
    am[b] = a;
    const float inv = rcp_approx_ftz(a);
    // The padding element of an odd-length tensor is quantized as a 0 of the last block.
    const int64_t e_end = std::min(e0 + B, (e1 == n && (n & 1)) ? n + 1 : e1);
    for (int64_t e = e0; e < e_end; ++e) {
      const float v = e < n ? ftz(x[e]) : 0.0f;
      const float y = ftz(v * inv);
      const uint8_t c = nf4 ? quantize_nf4_code(y) : quantize_fp4_code(y);
      packed[e >> 1] |= (e & 1) ? c : uint8_t(c << 4);
    }
  }
  });
  if (!q.params.double_quant) {
    q.scales = absmax;
    return;
  }
  // Double quant (§3): offset = mean, then 8-bit dynamic-map blocks of 256 over absmax - offset.
  // torch's CUDA reduction order is not reproduced (spec §8.1): the sum is taken in double.
  double sum = 0.0;
  for (int64_t b = 0; b < nb; ++b) sum += am[b];
  q.offset = float(sum / double(nb));
  const int64_t nb2 = (nb + kNestedBlock - 1) / kNestedBlock;
  q.scales = Tensor::empty(DType::U8, {nb}, MemCategory::Weights);
  q.scales2 = Tensor::empty(DType::F32, {nb2}, MemCategory::Weights);
  uint8_t* codes = q.scales.data<uint8_t>();
  float* nested = q.scales2.data<float>();
  ThreadPool::global().parallel_for(nb2, 16, [&](int64_t c_begin, int64_t c_end) {
  for (int64_t b2 = c_begin; b2 < c_end; ++b2) {
    const int64_t i0 = b2 * kNestedBlock, i1 = std::min(nb, i0 + kNestedBlock);
    float a2 = 0.0f;
    for (int64_t i = i0; i < i1; ++i) a2 = std::fmax(a2, std::fabs(am[i] - q.offset));
    nested[b2] = a2;
    const float inv = rcp_approx_ftz(a2);
    for (int64_t i = i0; i < i1; ++i) codes[i] = quantize_dynamic8(ftz(ftz(am[i] - q.offset) * inv));
  }
  });
}

float bnb4_absmax(const QuantWeight& q, int64_t b) {
  if (!q.params.double_quant) return q.scales.data<float>()[b];
  // Two separate fp32 ops, no FMA (dequantize_blockwise, then += offset).
  const float t = kDynamicMap8[q.scales.data<uint8_t>()[b]] * q.scales2.data<float>()[b / kNestedBlock];
  return t + q.offset;
}

void dequantize_bnb4(const QuantWeight& q, int64_t row, int64_t k0, int64_t n, float* out) {
  const auto& lut = q.format == QuantFormat::NF4 ? kNf4Values : kFp4Values;
  const uint8_t* packed = q.data.data<uint8_t>();
  const int64_t B = q.params.blocksize;
  int64_t e = row * q.cols + k0;
  const int64_t e_end = e + n;
  while (e < e_end) {
    const int64_t b = e / B, stop = std::min(e_end, (b + 1) * B);
    const float a = bnb4_absmax(q, b);
    for (; e < stop; ++e) {
      const uint8_t byte = packed[e >> 1];
      *out++ = lut[(e & 1) ? (byte & 15) : (byte >> 4)] * a;
    }
  }
}

}  // namespace qforge::quant_detail
