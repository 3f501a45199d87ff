// qforge/quant.h — weight quantization formats as data. Each format has one block struct (in
// src/quant/, with a size static_assert), one row in the traits table and one reference
// quantize/dequantize pair; optimised kernels are tested bit-for-bit against the reference.
#pragma once
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "qforge/tensor.h"

namespace qforge {

enum class QuantFormat : uint8_t {
  None,     // plain f32/f16/bf16 weight
  NF4,      // bitsandbytes NF4, fp32 absmax per block (optionally double-quantized)
  FP4,      // bitsandbytes FP4
  INT8,     // LLM.int8 row-wise absmax (weight int8 + SCB fp32)
  FP8_E4M3, // per-tensor (or per-channel) fp32 scale, saturating RNE
  FP8_E5M2,
  NVFP4,    // E2M1, E4M3 scale per 16, fp32 global scale (ModelOpt)
  MXFP4,    // E2M1, E8M0 scale per 32 (OCP)
  INT4,     // GPTQ storage: qweight/qzeros/scales/g_idx, group 32/64/128, sym or asym
  Q4_0,     // GGUF
  Q8_0,     // GGUF
  Q4_K,     // GGUF
  Q5_0,     // GGUF (llama.cpp's fallback for rows that are not whole Q4_K/Q5_K super-blocks)
  Q6_K,     // GGUF (output and some attn_v/ffn_down tensors of Q4_K_M / Q5_K_M files)
  Q4_1,     // GGUF legacy (f16 d and min per 32)
  Q5_1,     // GGUF legacy (llama.cpp's fallback for rows that are not whole Q5_K super-blocks)
  Q5_K,     // GGUF (Q5_K_S / Q5_K_M files)
  Q2_K,     // GGUF (Q2_K files)
  Q3_K,     // GGUF (Q3_K_S / Q3_K_M / Q3_K_L files)
  Count
};

struct QuantParams {
  int blocksize = 0;          // 0 = the format's default (nf4/fp4: 64; int4: group 128)
  bool double_quant = false;  // nf4/fp4
  bool per_channel = false;   // fp8: per output channel instead of per tensor
  bool symmetric = false;     // int4
};

struct QuantFormatTraits {
  QuantFormat format;
  std::string_view name;       // CLI spelling: "nf4", "fp8", "fp8-e5m2", "q4_0", ...
  int default_block;           // elements per scale block (0 = per row / per tensor)
  double bits_per_weight;      // at the default block, scales included
  std::string_view description;
};
const QuantFormatTraits& quant_traits(QuantFormat f);
std::optional<QuantFormat> parse_quant_format(std::string_view name);

// A quantized [rows, cols] weight (rows = out_features). Buffers are format specific and
// documented beside each format's quantizer in src/quant/ (summary in docs/quant-formats.md):
//   nf4/fp4  data U8 [(n+1)/2] (flattened, even element high nibble); scales F32 [nb] absmax, or U8 [nb]
//            with double quant + scales2 F32 [ceil(nb/256)] nested absmax + offset
//   int8     data I8 [N,K]; scales F32 [N] (SCB)
//   fp8      data F8_E4M3/F8_E5M2 [N,K]; scales F32 [1] or [N] (per_channel)
//   nvfp4    data U8 [N,Kp/2] (even element low nibble); scales F8_E4M3 [N,Kp/16]; scales2 F32 [1]
//   mxfp4    data U8 [N,Kp/2]; scales U8 [N,Kp/32] (E8M0)
//   int4     data I32 [ceil(K/8),N] qweight; scales F16 [G,N]; zeros I32 [G,ceil(N/8)]; g_idx I32 [K]
//   q4_0/q4_1/q5_0/q5_1/q8_0/q2_k/q3_k/q4_k/q5_k/q6_k  data U8 [N, K/QK*block bytes] (GGUF blocks)
struct QuantWeight {
  QuantFormat format = QuantFormat::None;
  QuantParams params;   // blocksize resolved to the format's actual block (never 0 after quantize)
  int64_t rows = 0, cols = 0;
  Tensor data;          // packed codes / blocks
  Tensor scales;        // absmax / block scales / SCB / weight_scale
  Tensor scales2;       // double quant: nested absmax; nvfp4: per-tensor scale (weight_scale_2)
  Tensor zeros;         // int4 qzeros
  Tensor g_idx;         // int4 group index per input column
  float offset = 0.0f;  // nf4/fp4 double quant mean offset
  size_t storage_bytes() const;  // bytes of every buffer held (+4 for offset when double-quantized)
};

// Reference (scalar, bit-exact) quantize of a float weight [rows, cols] (f32/f16/bf16).
QuantWeight quantize_weight(const Tensor& w, QuantFormat f, const QuantParams& p);
// Reference dequantize of rows [row0, row0+n) into out[n*cols] (f32).
void dequantize_rows(const QuantWeight& q, int64_t row0, int64_t n, float* out);
// Reference dequantize of columns [k0, k0+n) of one row into out[n] (f32); the tile primitive that
// the reference and CPU linear kernels use (never a whole dequantized weight).
void dequantize_segment(const QuantWeight& q, int64_t row, int64_t k0, int64_t n, float* out);
// Bytes a [rows, cols] weight takes in format f with params p, every scale included.
size_t quant_storage_bytes(QuantFormat f, const QuantParams& p, int64_t rows, int64_t cols);
// All formats with a traits row, in table order (QuantFormat::None excluded).
std::span<const QuantFormatTraits> quant_formats();

}  // namespace qforge
