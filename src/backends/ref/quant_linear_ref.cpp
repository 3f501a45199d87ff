// src/backends/ref/quant_linear_ref.cpp — the scalar reference quantized linear: for each output row,
// dequantize one block-aligned tile of the row at a time (reference dequantize_segment) and accumulate
// w*x in double, so the only rounding is the weight format itself and the final cast to f32.
#include <vector>

#include "backends/quant_linear.h"
#include "qforge/status.h"

namespace qforge {

void quant_linear_ref(const QuantWeight& w, const float* x, int64_t n_tokens, float* y) {
  const int64_t N = w.rows, K = w.cols;
  constexpr int64_t kTile = 256;  // a multiple of every format's block along a row
  std::vector<float> tile(kTile);
  std::vector<double> acc(static_cast<size_t>(n_tokens));
  for (int64_t r = 0; r < N; ++r) {
    std::fill(acc.begin(), acc.end(), 0.0);
    for (int64_t k0 = 0; k0 < K; k0 += kTile) {
      const int64_t len = std::min(kTile, K - k0);
      dequantize_segment(w, r, k0, len, tile.data());
      for (int64_t t = 0; t < n_tokens; ++t)
        for (int64_t k = 0; k < len; ++k) acc[t] += double(tile[k]) * double(x[t * K + k0 + k]);
    }
    for (int64_t t = 0; t < n_tokens; ++t) y[t * N + r] = float(acc[t]);
  }
}

}  // namespace qforge
