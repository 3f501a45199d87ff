// src/quant/quant_formats.h — internal per-format entry points behind quantize_weight / dequantize_rows.
// Each family file (bnb4.cpp, int8_fp8.cpp, fp4_block.cpp, int4_gptq.cpp, gguf.cpp) fills the buffers of
// a QuantWeight from f32 rows and decodes any column range [k0, k0+n) of one row back to f32.
#pragma once
#include <cstdint>

#include "qforge/quant.h"

namespace qforge::quant_detail {

// x is the weight as f32 [rows*cols]; src_dtype is the dtype it came from (int8 casts to f16 first).
void quantize_bnb4(const float* x, QuantWeight& q);
void quantize_int8(const float* x, QuantWeight& q);
void quantize_fp8(const float* x, QuantWeight& q);
void quantize_nvfp4(const float* x, QuantWeight& q);
void quantize_mxfp4(const float* x, QuantWeight& q);
void quantize_int4(const float* x, QuantWeight& q);
void quantize_gguf(const float* x, QuantWeight& q);

void dequantize_bnb4(const QuantWeight& q, int64_t row, int64_t k0, int64_t n, float* out);
void dequantize_int8(const QuantWeight& q, int64_t row, int64_t k0, int64_t n, float* out);
void dequantize_fp8(const QuantWeight& q, int64_t row, int64_t k0, int64_t n, float* out);
void dequantize_nvfp4(const QuantWeight& q, int64_t row, int64_t k0, int64_t n, float* out);
void dequantize_mxfp4(const QuantWeight& q, int64_t row, int64_t k0, int64_t n, float* out);
void dequantize_int4(const QuantWeight& q, int64_t row, int64_t k0, int64_t n, float* out);
void dequantize_gguf(const QuantWeight& q, int64_t row, int64_t k0, int64_t n, float* out);

// The bnb 4-bit absmax of block b (fp32, or rebuilt from the double-quantized codes).
float bnb4_absmax(const QuantWeight& q, int64_t b);

}  // namespace qforge::quant_detail
