// backends/ref/norm_ref.cpp — reference RMSNorm (as HF LlamaRMSNorm in float32).
#include <cmath>

#include "backends/ref/ref_ops.h"

namespace qforge::ref {

void rmsnorm(const float* x, const Tensor& w, int64_t n, int64_t d, float eps, float* y) {
  for (int64_t t = 0; t < n; ++t) {
    const float* xr = x + t * d;
    double ss = 0;
    for (int64_t i = 0; i < d; ++i) ss += double(xr[i]) * xr[i];
    float inv = 1.0f / std::sqrt(float(ss / double(d)) + eps);
    for (int64_t i = 0; i < d; ++i) y[t * d + i] = load_float(w, i) * (xr[i] * inv);
  }
}

}  // namespace qforge::ref
