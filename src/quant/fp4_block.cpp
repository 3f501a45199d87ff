// src/quant/fp4_block.cpp — NVFP4 (E2M1 + E4M3 scale per 16 along K + fp32 per-tensor scale, ModelOpt rule)
// and MXFP4 (E2M1 + E8M0 scale per 32 along K, OCP "floor" rule 2^(floor(log2 amax) - 2)); spec
// fp8-fp4-formats.md §2–4. Both pack the even element in the LOW nibble. K is zero-padded per row to
// the block (Kp): data U8 [N, Kp/2]; NVFP4 scales F8_E4M3 [N, Kp/16], scales2 F32 [1] (weight_scale_2);
// MXFP4 scales U8 [N, Kp/32] (biased E8M0).
#include <algorithm>
#include <cmath>
#include <string>

#include "core/thread_pool.h"
#include "qforge/status.h"
#include "quant/quant_codecs.h"
#include "quant/quant_formats.h"

namespace qforge::quant_detail {

namespace {
void check_finite(const float* x, int64_t n, int64_t K, const char* what) {
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(x[i]))
      throw Error(std::string("quantize ") + what + ": weight element [" + std::to_string(i / K) + ", " +
                  std::to_string(i % K) + "] is not finite");
}
int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }
}  // namespace

void quantize_nvfp4(const float* x, QuantWeight& q) {
  const int64_t N = q.rows, K = q.cols, Kp = round_up(K, 16), nbk = Kp / 16;
  check_finite(x, N * K, K, "nvfp4");
  q.data = Tensor::empty(DType::U8, {N, Kp / 2}, MemCategory::Weights, true);
  q.scales = Tensor::empty(DType::F8_E4M3, {N, nbk}, MemCategory::Weights);
  q.scales2 = Tensor::empty(DType::F32, {1}, MemCategory::Weights);
  float amax = 0.0f;
  for (int64_t i = 0; i < N * K; ++i) amax = std::max(amax, std::fabs(x[i]));
  // weight_scale_2 = amax / (6 * 448); an all-zero weight gets 1 so that no 0/0 appears.
  const float ws2 = amax > 0.0f ? amax / (6.0f * 448.0f) : 1.0f;
  q.scales2.data<float>()[0] = ws2;
  uint8_t* sc = q.scales.data<uint8_t>();
  uint8_t* d = q.data.data<uint8_t>();
  const float six_ws2 = 6.0f * ws2;
  ThreadPool::global().parallel_for(N, 16, [&](int64_t r_begin, int64_t r_end) {  // rows are independent
  for (int64_t r = r_begin; r < r_end; ++r)
    for (int64_t b = 0; b < nbk; ++b) {
      const int64_t k0 = b * 16, k1 = std::min(K, k0 + 16);
      float bmax = 0.0f;
      for (int64_t k = k0; k < k1; ++k) bmax = std::max(bmax, std::fabs(x[r * K + k]));
      float s = bmax / six_ws2;
      if (s == 0.0f) s = 1.0f;
      const uint8_t s8 = f32_to_e4m3(s);
      sc[r * nbk + b] = s8;
      const float denom = e4m3_to_f32(s8) * ws2;
      for (int64_t k = k0; k < k1; ++k) {
        const uint8_t c = f32_to_e2m1(x[r * K + k] / denom);
        d[r * (Kp / 2) + k / 2] |= (k & 1) ? uint8_t(c << 4) : c;
      }
    }
  });
}

void dequantize_nvfp4(const QuantWeight& q, int64_t row, int64_t k0, int64_t n, float* out) {
  const int64_t Kp = round_up(q.cols, 16);
  const uint8_t* d = q.data.data<uint8_t>() + row * (Kp / 2);
  const uint8_t* sc = q.scales.data<uint8_t>() + row * (Kp / 16);
  const float ws2 = q.scales2.data<float>()[0];
  const auto& e4 = fp8_table(Fp8Kind::E4M3);
  for (int64_t k = k0; k < k0 + n;) {
    const float s = e4[sc[k >> 4]];  // (e2m1 * block scale) * ws2, in that order
    for (const int64_t stop = std::min(k0 + n, (k | 15) + 1); k < stop; ++k) {
      const uint8_t byte = d[k >> 1];
      out[k - k0] = kE2M1Values[(k & 1) ? byte >> 4 : byte & 15] * s * ws2;
    }
  }
}

void quantize_mxfp4(const float* x, QuantWeight& q) {
  const int64_t N = q.rows, K = q.cols, Kp = round_up(K, 32), nbk = Kp / 32;
  check_finite(x, N * K, K, "mxfp4");
  q.data = Tensor::empty(DType::U8, {N, Kp / 2}, MemCategory::Weights, true);
  q.scales = Tensor::empty(DType::U8, {N, nbk}, MemCategory::Weights);
  uint8_t* sc = q.scales.data<uint8_t>();
  uint8_t* d = q.data.data<uint8_t>();
  ThreadPool::global().parallel_for(N, 16, [&](int64_t r_begin, int64_t r_end) {  // rows are independent
  for (int64_t r = r_begin; r < r_end; ++r)
    for (int64_t b = 0; b < nbk; ++b) {
      const int64_t k0 = b * 32, k1 = std::min(K, k0 + 32);
      float bmax = 0.0f;
      for (int64_t k = k0; k < k1; ++k) bmax = std::max(bmax, std::fabs(x[r * K + k]));
      int s = -127;  // all-zero block: smallest scale, codes 0
      if (bmax > 0.0f) {
        int ex = 0;
        std::frexp(bmax, &ex);  // bmax = m * 2^ex, m in [0.5, 1): floor(log2 bmax) = ex - 1
        s = std::clamp(ex - 1 - 2, -127, 127);
      }
      sc[r * nbk + b] = uint8_t(s + 127);
      for (int64_t k = k0; k < k1; ++k) {
        const uint8_t c = f32_to_e2m1(std::ldexp(x[r * K + k], -s));  // exact power-of-two scaling
        d[r * (Kp / 2) + k / 2] |= (k & 1) ? uint8_t(c << 4) : c;
      }
    }
  });
}

void dequantize_mxfp4(const QuantWeight& q, int64_t row, int64_t k0, int64_t n, float* out) {
  const int64_t Kp = round_up(q.cols, 32);
  const uint8_t* d = q.data.data<uint8_t>() + row * (Kp / 2);
  const uint8_t* sc = q.scales.data<uint8_t>() + row * (Kp / 32);
  for (int64_t k = k0; k < k0 + n;) {
    const float s = e8m0_to_f32(sc[k >> 5]);
    for (const int64_t stop = std::min(k0 + n, (k | 31) + 1); k < stop; ++k) {
      const uint8_t byte = d[k >> 1];
      out[k - k0] = kE2M1Values[(k & 1) ? byte >> 4 : byte & 15] * s;
    }
  }
}

}  // namespace qforge::quant_detail
