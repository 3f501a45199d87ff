// src/quant/quant_weight.cpp — the format traits table (one row per format), name parsing, parameter
// checks, and the quantize_weight / dequantize_rows dispatch to the per-family reference code.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "qforge/quant.h"
#include "core/thread_pool.h"
#include "qforge/status.h"
#include "quant/quant_codecs.h"
#include "quant/quant_formats.h"

namespace qforge {

using namespace quant_detail;

namespace {
// bits per weight at the default block, scales included (per-row / per-tensor scalars excluded).
constexpr double kBnbBits = 4.0 + 32.0 / 64;
constexpr double kInt4Bits = 4.0 + (16.0 + 4.0) / 128;  // f16 scale + 4-bit zero per group of 128
const QuantFormatTraits kTraits[] = {
    {QuantFormat::None, "none", 0, 32.0, "unquantized float weight"},
    {QuantFormat::NF4, "nf4", 64, kBnbBits, "bitsandbytes NormalFloat4, fp32 absmax per 64 (flattened)"},
    {QuantFormat::FP4, "fp4", 64, kBnbBits, "bitsandbytes FP4 (E2M1 / 12), fp32 absmax per 64 (flattened)"},
    {QuantFormat::INT8, "int8", 0, 8.0, "LLM.int8 row-wise absmax: int8 + fp32 SCB per row"},
    {QuantFormat::FP8_E4M3, "fp8", 0, 8.0, "FP8 E4M3 (fn), fp32 scale amax/448 per tensor (or per channel)"},
    {QuantFormat::FP8_E5M2, "fp8-e5m2", 0, 8.0, "FP8 E5M2, fp32 scale amax/57344 per tensor (or per channel)"},
    {QuantFormat::NVFP4, "nvfp4", 16, 4.0 + 8.0 / 16, "E2M1 + E4M3 scale per 16 + fp32 tensor scale (ModelOpt)"},
    {QuantFormat::MXFP4, "mxfp4", 32, 4.0 + 8.0 / 32, "E2M1 + E8M0 scale per 32 (OCP MX, floor rule)"},
    {QuantFormat::INT4, "int4", 128, kInt4Bits, "int4 RTN per group along K, GPTQ storage (asym or sym)"},
    {QuantFormat::Q4_0, "q4_0", 32, sizeof(BlockQ4_0) * 8.0 / 32, "GGUF Q4_0: f16 d + 32 x 4-bit"},
    {QuantFormat::Q8_0, "q8_0", 32, sizeof(BlockQ8_0) * 8.0 / 32, "GGUF Q8_0: f16 d + 32 x int8"},
    {QuantFormat::Q4_K, "q4_k", 256, sizeof(BlockQ4_K) * 8.0 / 256, "GGUF Q4_K: 256-superblock, 6-bit scales/mins"},
    {QuantFormat::Q5_0, "q5_0", 32, sizeof(BlockQ5_0) * 8.0 / 32, "GGUF Q5_0: f16 d + 32 x 5-bit"},
    {QuantFormat::Q6_K, "q6_k", 256, sizeof(BlockQ6_K) * 8.0 / 256, "GGUF Q6_K: 256-superblock, int8 scale per 16"},
    {QuantFormat::Q4_1, "q4_1", 32, sizeof(BlockQ4_1) * 8.0 / 32, "GGUF Q4_1: f16 d and min + 32 x 4-bit"},
    {QuantFormat::Q5_1, "q5_1", 32, sizeof(BlockQ5_1) * 8.0 / 32, "GGUF Q5_1: f16 d and min + 32 x 5-bit"},
    {QuantFormat::Q5_K, "q5_k", 256, sizeof(BlockQ5_K) * 8.0 / 256, "GGUF Q5_K: 256-superblock, 6-bit scales/mins"},
    {QuantFormat::Q2_K, "q2_k", 256, sizeof(BlockQ2_K) * 8.0 / 256, "GGUF Q2_K: 256-superblock, 4-bit scale/min per 16"},
    {QuantFormat::Q3_K, "q3_k", 256, sizeof(BlockQ3_K) * 8.0 / 256, "GGUF Q3_K: 256-superblock, 6-bit scale per 16"},
};
static_assert(std::size(kTraits) == size_t(QuantFormat::Count));

bool is_bnb4(QuantFormat f) { return f == QuantFormat::NF4 || f == QuantFormat::FP4; }
bool is_gguf(QuantFormat f) {
  return f == QuantFormat::Q4_0 || f == QuantFormat::Q8_0 || f == QuantFormat::Q4_K || f == QuantFormat::Q5_0 ||
         f == QuantFormat::Q6_K || f == QuantFormat::Q4_1 || f == QuantFormat::Q5_1 || f == QuantFormat::Q5_K ||
         f == QuantFormat::Q2_K || f == QuantFormat::Q3_K;
}
}  // namespace

const QuantFormatTraits& quant_traits(QuantFormat f) {
  QF_CHECK(size_t(f) < std::size(kTraits) && kTraits[size_t(f)].format == f, "bad QuantFormat");
  return kTraits[size_t(f)];
}

std::span<const QuantFormatTraits> quant_formats() { return {kTraits + 1, std::size(kTraits) - 1}; }

std::optional<QuantFormat> parse_quant_format(std::string_view name) {
  std::string s(name);
  for (auto& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  for (auto& c : s) if (c == '_' && s.rfind("q", 0) != 0) c = '-';  // fp8_e5m2 == fp8-e5m2; keep q4_0
  for (const auto& t : kTraits)
    if (t.name == s) return t.format;
  if (s == "fp8-e4m3" || s == "e4m3" || s == "float8-e4m3fn") return QuantFormat::FP8_E4M3;
  if (s == "e5m2" || s == "float8-e5m2") return QuantFormat::FP8_E5M2;
  if (s == "bnb-nf4") return QuantFormat::NF4;
  if (s == "bnb-fp4") return QuantFormat::FP4;
  return std::nullopt;
}

size_t QuantWeight::storage_bytes() const {
  size_t n = 0;
  for (const Tensor* t : {&data, &scales, &scales2, &zeros, &g_idx})
    if (t->defined()) n += t->nbytes();
  if (is_bnb4(format) && params.double_quant) n += sizeof(offset);
  return n;
}

QuantWeight quantize_weight(const Tensor& w, QuantFormat f, const QuantParams& p) {
  if (f == QuantFormat::None || f >= QuantFormat::Count) throw Error("quantize: no quantization format given");
  const auto& tr = quant_traits(f);
  const std::string fname(tr.name);
  if (w.ndim() != 2) throw Error("quantize " + fname + ": weight must be 2-D [out, in], got " + w.shape_str());
  if (w.dtype() != DType::F32 && w.dtype() != DType::F16 && w.dtype() != DType::BF16)
    throw Error("quantize " + fname + ": weight dtype " + std::string(dtype_name(w.dtype())) +
                " is not f32/f16/bf16");
  QuantWeight q;
  q.format = f;
  q.params = p;
  q.rows = w.dim(0);
  q.cols = w.dim(1);
  int& bs = q.params.blocksize;
  if (is_bnb4(f)) {
    if (bs == 0) bs = tr.default_block;
    if (bs < 32 || bs > 4096 || (bs & (bs - 1)) != 0)
      throw Error("quantize " + fname + ": --blocksize " + std::to_string(bs) + " must be a power of two in 32..4096");
  } else if (f == QuantFormat::INT4) {
    if (bs == 0) bs = tr.default_block;
    if (bs != 32 && bs != 64 && bs != 128)
      throw Error("quantize int4: --group-size " + std::to_string(bs) + " must be 32, 64 or 128");
  } else if (bs != 0 && bs != tr.default_block) {
    throw Error("quantize " + fname + ": --blocksize " + std::to_string(bs) + " is fixed by the format (" +
                std::to_string(tr.default_block) + ")");
  } else {
    bs = tr.default_block;
  }
  if (q.params.double_quant && !is_bnb4(f)) throw Error("quantize " + fname + ": double quant applies to nf4/fp4 only");
  if (q.params.per_channel && f != QuantFormat::FP8_E4M3 && f != QuantFormat::FP8_E5M2)
    throw Error("quantize " + fname + ": per-channel scales apply to fp8 only");
  std::vector<float> x(size_t(w.numel()));
  const size_t esz = dtype_size(w.dtype());
  ThreadPool::global().parallel_for(int64_t(x.size()), 1 << 16, [&](int64_t a, int64_t b) {
    convert_floats(static_cast<const char*>(w.raw()) + a * int64_t(esz), w.dtype(), x.data() + a, DType::F32, size_t(b - a));
  });
  switch (f) {
    case QuantFormat::NF4: case QuantFormat::FP4: quantize_bnb4(x.data(), q); break;
    case QuantFormat::INT8: quantize_int8(x.data(), q); break;
    case QuantFormat::FP8_E4M3: case QuantFormat::FP8_E5M2: quantize_fp8(x.data(), q); break;
    case QuantFormat::NVFP4: quantize_nvfp4(x.data(), q); break;
    case QuantFormat::MXFP4: quantize_mxfp4(x.data(), q); break;
    case QuantFormat::INT4: quantize_int4(x.data(), q); break;
    default: quantize_gguf(x.data(), q); break;
  }
  return q;
}

void dequantize_segment(const QuantWeight& q, int64_t row, int64_t k0, int64_t n, float* out) {
  switch (q.format) {
    case QuantFormat::NF4: case QuantFormat::FP4: dequantize_bnb4(q, row, k0, n, out); break;
    case QuantFormat::INT8: dequantize_int8(q, row, k0, n, out); break;
    case QuantFormat::FP8_E4M3: case QuantFormat::FP8_E5M2: dequantize_fp8(q, row, k0, n, out); break;
    case QuantFormat::NVFP4: dequantize_nvfp4(q, row, k0, n, out); break;
    case QuantFormat::MXFP4: dequantize_mxfp4(q, row, k0, n, out); break;
    case QuantFormat::INT4: dequantize_int4(q, row, k0, n, out); break;
    default:
      QF_CHECK(is_gguf(q.format), "dequantize: unknown format");
      dequantize_gguf(q, row, k0, n, out);
  }
}

void dequantize_rows(const QuantWeight& q, int64_t row0, int64_t n, float* out) {
  QF_CHECK(row0 >= 0 && n >= 0 && row0 + n <= q.rows, "dequantize_rows: row range out of bounds");
  for (int64_t r = 0; r < n; ++r) dequantize_segment(q, row0 + r, 0, q.cols, out + r * q.cols);
}

}  // namespace qforge
