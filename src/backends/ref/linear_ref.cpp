// backends/ref/linear_ref.cpp — reference y = x·Wᵀ + b for plain float weights (double
// accumulation) and, for quantized weights, the format's reference kernel.
#include "backends/quant_linear.h"
#include "backends/ref/ref_ops.h"

namespace qforge::ref {

void linear(const Linear& l, const float* x, int64_t n, float* y) {
  if (l.quantized()) {
    require_weight_bytes(l, "ref linear");
    quant_linear_ref(l.qweight, x, n, y);
  } else {
    for (int64_t t = 0; t < n; ++t)
      for (int64_t o = 0; o < l.out; ++o) {
        double acc = 0;
        for (int64_t i = 0; i < l.in; ++i) acc += double(x[t * l.in + i]) * load_float(l.weight, o * l.in + i);
        y[t * l.out + o] = float(acc);
      }
  }
  if (l.bias)
    for (int64_t t = 0; t < n; ++t)
      for (int64_t o = 0; o < l.out; ++o) y[t * l.out + o] += l.bias.data<float>()[o];
}

}  // namespace qforge::ref
