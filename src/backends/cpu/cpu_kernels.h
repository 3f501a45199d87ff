// backends/cpu/cpu_kernels.h — SIMD kernels of the optimised CPU backend. *_avx2.cpp files are
// compiled with -mavx2 -mfma -mf16c and only called when the CPU has them (cpu_has_avx2()); *_avx512.cpp
// files enable AVX-512 per function (target pragma) and are only called when cpu_has_avx512().
#pragma once
#include <cstdint>

#include "qforge/dtype.h"

namespace qforge::cpu {

bool cpu_has_avx2();    // AVX2 + FMA + F16C, checked once
bool cpu_has_avx512();  // that + AVX-512 F/BW/VL/DQ, checked once

// y[t*y_stride + r] = sum_i x[t*in + i] * W[r][i] for rows [0, nrows) of w (row stride `in`),
// tokens [0, n_tok). W is f32/f16/bf16 (`wt`).
void dot_tile_avx2(const void* w, DType wt, int64_t nrows, int64_t in, const float* x, int64_t n_tok, float* y,
                   int64_t y_stride);
// Same with AVX-512 (4 rows x 4 tokens of zmm accumulators).
void dot_tile_avx512(const void* w, DType wt, int64_t nrows, int64_t in, const float* x, int64_t n_tok, float* y,
                     int64_t y_stride);
// Same, portable scalar code (f32 accumulation) for CPUs without AVX2.
void dot_tile_scalar(const void* w, DType wt, int64_t nrows, int64_t in, const float* x, int64_t n_tok, float* y,
                     int64_t y_stride);

// AMX-BF16 prefill for bf16 / f16 weights (linear_amx.cpp): y[t * rows + r] = x[t] . W[r] for n tokens, with
// the activations split exactly into three bf16 parts and f16 weights into two (exact products, f32
// accumulation; the dropped low x low term of f16 is below 2^-24 |w x|). Threaded over blocks of rows.
// amx_bf16_available(): AMX-BF16 and everything cpu_quant::amx_available() needs. in % 32 == 0.
inline constexpr int64_t kAmxFloatMinTokens = 16;
bool amx_bf16_available();
void linear_amx16(const void* w, DType wt, int64_t rows, int64_t in, const float* x, int64_t n, float* y);

float dot_f32_avx2(const float* a, const float* b, int64_t n);
void axpy_f32_avx2(float a, const float* x, float* y, int64_t n);  // y += a*x

}  // namespace qforge::cpu
