// backends/ref/elementwise_ref.cpp — reference SwiGLU (silu(gate)·up) and residual add.
#include <cmath>

#include "backends/ref/ref_ops.h"

namespace qforge::ref {

void swiglu(const float* gate, const float* up, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    float g = gate[i];
    out[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

void add(float* x, const float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] += y[i];
}

}  // namespace qforge::ref
