// qforge/quant.h — weight quantization formats as data. Each format has one block struct (in
// src/quant/, with a size static_assert), one row in the traits table and one reference
// quantize/dequantize pair; optimised kernels are tested bit-for-bit against the reference.
#pragma once
#include <cstdint>
#include <optional>
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
// documented beside each format's block struct in src/quant/.
struct QuantWeight {
  QuantFormat format = QuantFormat::None;
  QuantParams params;
  int64_t rows = 0, cols = 0;
  Tensor data;          // packed codes / blocks
  Tensor scales;        // absmax / block scales / SCB / weight_scale
  Tensor scales2;       // double quant: quantized absmax code offsets etc.; nvfp4: per-tensor scale
  Tensor zeros;         // int4 asym zero points
  float offset = 0.0f;  // nf4 double quant mean offset
  size_t storage_bytes() const;  // bytes actually held, every buffer included
};

// Reference (scalar, bit-exact) quantize of a float weight [rows, cols] (f32/f16/bf16).
QuantWeight quantize_weight(const Tensor& w, QuantFormat f, const QuantParams& p);
// Reference dequantize of rows [row0, row0+n) into out[n*cols] (f32).
void dequantize_rows(const QuantWeight& q, int64_t row0, int64_t n, float* out);
// Bytes a [rows, cols] weight takes in format f with params p, every scale included.
size_t quant_storage_bytes(QuantFormat f, const QuantParams& p, int64_t rows, int64_t cols);

}  // namespace qforge
