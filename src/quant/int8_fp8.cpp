// src/quant/int8_fp8.cpp — LLM.int8 row-wise absmax (bitsandbytes.md §5) and FP8 E4M3/E5M2 weights with a
// per-tensor or per-output-channel fp32 dequant scale (fp8-fp4-formats.md §1.3, ModelOpt rule).
// INT8 buffers: data I8 [N, K]; scales F32 [N] (SCB, an exact fp16 value). FP8 buffers: data
// F8_E4M3/F8_E5M2 [N, K]; scales F32 [1] (per tensor) or [N] (per channel), x ~ fp8 * scale.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "qforge/status.h"
#include "quant/quant_codecs.h"
#include "quant/quant_formats.h"

namespace qforge::quant_detail {

void quantize_int8(const float* x, QuantWeight& q) {
  const int64_t N = q.rows, K = q.cols;
  q.data = Tensor::empty(DType::I8, {N, K}, MemCategory::Weights);
  q.scales = Tensor::empty(DType::F32, {N}, MemCategory::Weights);
  int8_t* cb = q.data.data<int8_t>();
  float* scb = q.scales.data<float>();
  // Rows are independent: quantize them in parallel (bit-identical to the sequential order).
  ThreadPool::global().parallel_for(N, 16, [&](int64_t r_begin, int64_t r_end) {
  std::vector<float> h(static_cast<size_t>(K));
  for (int64_t r = r_begin; r < r_end; ++r) {
    float amax = 0.0f;
    for (int64_t k = 0; k < K; ++k) {
      h[k] = f16_to_f32(f32_to_f16(x[r * K + k]));  // W.to(float16): bf16/f32 weights round here
      if (!std::isfinite(h[k]))
        throw Error("quantize int8: weight element [" + std::to_string(r) + ", " + std::to_string(k) +
                    "] is not finite after the float16 cast (|w| > 65504, inf or NaN)");
      amax = std::max(amax, std::fabs(h[k]));
    }
    scb[r] = amax;
    const float mult = 127.0f * rcp_approx_ftz(amax);  // __fdividef(127, SCB), verified identical
    for (int64_t k = 0; k < K; ++k) {
      const float v = ftz(h[k] * mult);
      cb[r * K + k] = std::isnan(v) ? int8_t(0) : int8_t(std::nearbyint(v));  // __float2int_rn; zero row -> 0
    }
  }
  });
}

void dequantize_int8(const QuantWeight& q, int64_t row, int64_t k0, int64_t n, float* out) {
  const int8_t* cb = q.data.data<int8_t>() + row * q.cols + k0;
  const float s = q.scales.data<float>()[row];
  for (int64_t i = 0; i < n; ++i) out[i] = float(cb[i]) * s * 7.874015718698502e-3f;  // A*stats*(1/127)
}

void quantize_fp8(const float* x, QuantWeight& q) {
  const int64_t N = q.rows, K = q.cols;
  const Fp8Kind kind = q.format == QuantFormat::FP8_E4M3 ? Fp8Kind::E4M3 : Fp8Kind::E5M2;
  const float maxv = fp8_spec(kind).max_finite;
  for (int64_t i = 0; i < N * K; ++i)
    if (!std::isfinite(x[i]))
      throw Error("quantize fp8: weight element [" + std::to_string(i / K) + ", " + std::to_string(i % K) +
                  "] is not finite");
  const bool pc = q.params.per_channel;
  q.data = Tensor::empty(kind == Fp8Kind::E4M3 ? DType::F8_E4M3 : DType::F8_E5M2, {N, K}, MemCategory::Weights);
  q.scales = Tensor::empty(DType::F32, {pc ? N : 1}, MemCategory::Weights);
  uint8_t* d = q.data.data<uint8_t>();
  float* sc = q.scales.data<float>();
  auto amax_of = [&](int64_t i0, int64_t i1) {
    float a = 0.0f;
    for (int64_t i = i0; i < i1; ++i) a = std::max(a, std::fabs(x[i]));
    return a;
  };
  // scale = amax / max_finite; an all-zero tensor/row gets scale 1 (its codes are all 0 anyway).
  auto scale_of = [&](float amax) { return amax > 0.0f ? amax / maxv : 1.0f; };
  if (!pc) sc[0] = scale_of(amax_of(0, N * K));
  ThreadPool::global().parallel_for(N, 16, [&](int64_t r_begin, int64_t r_end) {
    for (int64_t r = r_begin; r < r_end; ++r) {
      if (pc) sc[r] = scale_of(amax_of(r * K, (r + 1) * K));
      const float s = sc[pc ? r : 0];
      for (int64_t k = 0; k < K; ++k) d[r * K + k] = f32_to_fp8(x[r * K + k] / s, kind, true);
    }
  });
}

void dequantize_fp8(const QuantWeight& q, int64_t row, int64_t k0, int64_t n, float* out) {
  const Fp8Kind kind = q.format == QuantFormat::FP8_E4M3 ? Fp8Kind::E4M3 : Fp8Kind::E5M2;
  const uint8_t* d = q.data.data<uint8_t>() + row * q.cols + k0;
  const float s = q.scales.data<float>()[q.params.per_channel ? row : 0];
  const auto& lut = fp8_table(kind);
  for (int64_t i = 0; i < n; ++i) out[i] = lut[d[i]] * s;
}

}  // namespace qforge::quant_detail
