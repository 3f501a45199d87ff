// src/backends/quant_linear.h — quantized linear y[n, rows] = x[n, cols] W^T for every QuantFormat:
// a scalar reference (dequantize one block at a time, accumulate in double) and the optimised CPU
// kernel (fused tile dequantize + dot, threaded over output rows, AVX2/FMA when the CPU has it).
#pragma once
#include <cstdint>

#include "qforge/quant.h"

namespace qforge {

void quant_linear_ref(const QuantWeight& w, const float* x, int64_t n_tokens, float* y);
void quant_linear_cpu(const QuantWeight& w, const float* x, int64_t n_tokens, float* y);

namespace cpu_detail {
// acc[t] += dot(wtile[0..len), x[t*ldx + 0..len)) for t < n_tokens; AVX2/FMA (quant_linear_avx2.cpp).
void dot_tokens_avx2(const float* wtile, const float* x, int64_t ldx, int64_t n_tokens, int64_t len, float* acc);
}  // namespace cpu_detail

}  // namespace qforge
