// src/backends/cpu/quant_linear.cpp — optimised CPU quantized linear for every format: threaded over output
// rows with ThreadPool::global(); each row is walked in block-aligned tiles of 256 weights that are
// dequantized once into a stack buffer (never a whole dequantized weight) and dotted with every token
// (AVX2/FMA kernel when the CPU supports it, scalar otherwise). f32 accumulation (see docs).
#include <algorithm>
#include <vector>

#include "backends/quant_linear.h"
#include "core/thread_pool.h"
#include "qforge/status.h"

namespace qforge {

namespace cpu_detail {
bool cpu_has_avx2_fma() {
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return has;
}
}  // namespace cpu_detail

namespace {
void dot_tokens_scalar(const float* w, const float* x, int64_t ldx, int64_t n_tokens, int64_t len, float* acc) {
  for (int64_t t = 0; t < n_tokens; ++t) {
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    const float* xt = x + t * ldx;
    int64_t k = 0;
    for (; k + 4 <= len; k += 4) {
      s0 += w[k] * xt[k];
      s1 += w[k + 1] * xt[k + 1];
      s2 += w[k + 2] * xt[k + 2];
      s3 += w[k + 3] * xt[k + 3];
    }
    for (; k < len; ++k) s0 += w[k] * xt[k];
    acc[t] += (s0 + s1) + (s2 + s3);
  }
}
}  // namespace

void quant_linear_cpu(const QuantWeight& w, const float* x, int64_t n_tokens, float* y) {
  QF_CHECK(w.format != QuantFormat::None, "quant_linear_cpu: weight is not quantized");
  const int64_t N = w.rows, K = w.cols;
  constexpr int64_t kTile = 256;
  const auto dot = cpu_detail::cpu_has_avx2_fma() ? cpu_detail::dot_tokens_avx2 : dot_tokens_scalar;
  ThreadPool::global().parallel_for(N, 8, [&](int64_t r0, int64_t r1) {
    alignas(64) float tile[kTile];
    std::vector<float> acc(static_cast<size_t>(n_tokens));
    for (int64_t r = r0; r < r1; ++r) {
      std::fill(acc.begin(), acc.end(), 0.0f);
      for (int64_t k0 = 0; k0 < K; k0 += kTile) {
        const int64_t len = std::min(kTile, K - k0);
        dequantize_segment(w, r, k0, len, tile);
        dot(tile, x + k0, K, n_tokens, len, acc.data());
      }
      for (int64_t t = 0; t < n_tokens; ++t) y[t * N + r] = acc[size_t(t)];
    }
  });
}

}  // namespace qforge
