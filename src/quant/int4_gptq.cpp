// src/quant/int4_gptq.cpp — INT4 round-to-nearest with GPTQ storage: groups of g (32/64/128) along K of each
// output row, min/max (asym) or absmax (sym) per group exactly as GPTQ's Quantizer (range includes 0,
// torch.round = half to even, zero = 8 when symmetric). Buffers: data = qweight I32 [ceil(K/8), N]
// (8 consecutive k of one column per word, k%8 at bits 4*(k%8)); scales = F16 [G, N], G = ceil(K/g);
// zeros = qzeros I32 [G, ceil(N/8)] (8 columns per word); g_idx = I32 [K] (k / g). qzeros hold the
// zero point itself ("gptq_v2" convention); HF "gptq" (v1) files store zero - 1.
#include <algorithm>
#include <cmath>
#include <string>

#include "core/thread_pool.h"
#include "qforge/status.h"
#include "quant/quant_formats.h"

namespace qforge::quant_detail {

void quantize_int4(const float* x, QuantWeight& q) {
  const int64_t N = q.rows, K = q.cols, g = q.params.blocksize;
  const int64_t G = (K + g - 1) / g, Kw = (K + 7) / 8, Nw = (N + 7) / 8;
  for (int64_t i = 0; i < N * K; ++i)
    if (!std::isfinite(x[i]))
      throw Error("quantize int4: weight element [" + std::to_string(i / K) + ", " + std::to_string(i % K) +
                  "] is not finite");
  q.data = Tensor::empty(DType::I32, {Kw, N}, MemCategory::Weights, true);
  q.scales = Tensor::empty(DType::F16, {G, N}, MemCategory::Weights);
  q.zeros = Tensor::empty(DType::I32, {G, Nw}, MemCategory::Weights, true);
  q.g_idx = Tensor::empty(DType::I32, {K}, MemCategory::Weights);
  uint32_t* qw = q.data.data<uint32_t>();
  uint16_t* sc = q.scales.data<uint16_t>();
  uint32_t* qz = q.zeros.data<uint32_t>();
  for (int64_t k = 0; k < K; ++k) q.g_idx.data<int32_t>()[k] = int32_t(k / g);
  const bool sym = q.params.symmetric;
  // Parallel over groups of 8 output rows: qzeros packs 8 rows per word, so no word is shared.
  ThreadPool::global().parallel_for(Nw, 2, [&](int64_t nw_begin, int64_t nw_end) {
  for (int64_t n = nw_begin * 8; n < std::min(N, nw_end * 8); ++n)
    for (int64_t gi = 0; gi < G; ++gi) {
      const int64_t k0 = gi * g, k1 = std::min(K, k0 + g);
      float xmin = 0.0f, xmax = 0.0f;
      for (int64_t k = k0; k < k1; ++k) {
        xmin = std::min(xmin, x[n * K + k]);
        xmax = std::max(xmax, x[n * K + k]);
      }
      if (sym) {
        xmax = std::max(-xmin, xmax);
        if (xmin < 0.0f) xmin = -xmax;
      }
      if (xmin == 0.0f && xmax == 0.0f) { xmin = -1.0f; xmax = 1.0f; }
      const float scale = (xmax - xmin) / 15.0f;
      const int zero = sym ? 8 : int(std::nearbyint(-xmin / scale));
      sc[gi * N + n] = f32_to_f16(scale);
      qz[gi * Nw + n / 8] |= uint32_t(zero & 15) << (4 * (n % 8));
      for (int64_t k = k0; k < k1; ++k) {
        const int v = std::clamp(int(std::nearbyint(x[n * K + k] / scale)) + zero, 0, 15);
        qw[(k / 8) * N + n] |= uint32_t(v) << (4 * (k % 8));
      }
    }
  });
}

void dequantize_int4(const QuantWeight& q, int64_t row, int64_t k0, int64_t n, float* out) {
  const int64_t N = q.rows, Nw = (N + 7) / 8;
  const uint32_t* qw = q.data.data<uint32_t>();
  const uint16_t* sc = q.scales.data<uint16_t>();
  const uint32_t* qz = q.zeros.data<uint32_t>();
  const int32_t* gi = q.g_idx.data<int32_t>();
  int64_t g_prev = -1;
  float s = 0.0f;
  int z = 0;
  for (int64_t k = k0; k < k0 + n; ++k) {
    const int64_t g = gi[k];
    if (g != g_prev) {
      g_prev = g;
      s = f16_to_f32(sc[g * N + row]);
      z = int((qz[g * Nw + row / 8] >> (4 * (row % 8))) & 15);
    }
    const int v = int((qw[(k >> 3) * N + row] >> (4 * (k & 7))) & 15);
    out[k - k0] = s * float(v - z);
  }
}

}  // namespace qforge::quant_detail
