// backends/quant_linear.h — quantized linear layers: y[n, rows] = x[n, cols] · Wᵀ for a
// QuantWeight, as a scalar reference and as the optimised CPU kernel (fused dequantize + dot).
#pragma once
#include <cstdint>

#include "qforge/quant.h"

namespace qforge {

void quant_linear_ref(const QuantWeight& w, const float* x, int64_t n_tokens, float* y);
void quant_linear_cpu(const QuantWeight& w, const float* x, int64_t n_tokens, float* y);

}  // namespace qforge
