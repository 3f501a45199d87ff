// quant/ckpt_fp8_nvfp4.cpp — FP8 and NVFP4 checkpoints (spec fp8-fp4-formats.md §1.4, §3.4). FP8 is
// written in the compressed-tensors "float-quantized" layout (weight F8_E4M3 + weight_scale F32 [1] or
// [N,1], dynamic per-token activations: no input_scale), read from it, from HF/vLLM "fp8" per-tensor
// and from ModelOpt FP8. NVFP4 is the ModelOpt layout: weight U8 [N,K/2], weight_scale F8_E4M3
// [N,K/16], weight_scale_2 F32 scalar, input_scale F32 scalar.
#include <cmath>

#include "qforge/status.h"
#include "quant/ckpt_internal.h"

namespace qforge::ckpt_detail {

using nlohmann::ordered_json;

namespace {

constexpr float kNvfp4Range = 6.0f * 448.0f;  // e2m1 max * e4m3 max

Tensor scalar_f32(float v) {
  Tensor t = Tensor::empty(DType::F32, {}, MemCategory::Weights);
  t.data<float>()[0] = v;
  return t;
}

ordered_json quant_args(const char* strategy, bool dynamic) {
  ordered_json a;
  a["num_bits"] = 8;
  a["type"] = "float";
  a["symmetric"] = true;
  a["group_size"] = nullptr;
  a["strategy"] = strategy;
  a["block_structure"] = nullptr;
  a["dynamic"] = dynamic;
  a["actorder"] = nullptr;
  a["observer"] = dynamic ? nullptr : ordered_json("minmax");
  a["observer_kwargs"] = ordered_json::object();
  return a;
}

}  // namespace

void emit_fp8(const std::string& m, const QuantWeight& q, TensorSink& out) {
  out.add(m + ".weight", q.data);
  if (q.params.per_channel) out.add(m + ".weight_scale", q.scales, {q.rows, 1});
  else out.add(m + ".weight_scale", q.scales, {1});
}

void emit_nvfp4(const std::string& m, const QuantWeight& q, float input_amax, TensorSink& out) {
  out.add(m + ".weight", q.data);
  out.add(m + ".weight_scale", q.scales);
  out.add(m + ".weight_scale_2", q.scales2, {});
  out.add(m + ".input_scale", scalar_f32(input_amax > 0.0f ? input_amax / kNvfp4Range : 1.0f), {});
}

ordered_json fp8_quantization_config(const ConfigInputs& c) {
  ordered_json group;
  group["targets"] = {"Linear"};
  group["weights"] = quant_args(c.params.per_channel ? "channel" : "tensor", false);
  group["input_activations"] = quant_args("token", true);
  group["output_activations"] = nullptr;
  group["format"] = "float-quantized";
  ordered_json j;
  j["quant_method"] = "compressed-tensors";
  j["format"] = "float-quantized";
  j["quantization_status"] = "compressed";
  j["config_groups"] = {{"group_0", group}};
  j["ignore"] = c.unquantized;
  j["kv_cache_scheme"] = nullptr;
  j["global_compression_ratio"] = nullptr;
  j["sparsity_config"] = ordered_json::object();
  j["producer"] = "qforge " QFORGE_VERSION_STRING;
  return j;
}

ordered_json nvfp4_quantization_config(const ConfigInputs& c) {
  ordered_json j;
  j["quant_method"] = "modelopt";
  j["quant_algo"] = "NVFP4";
  j["group_size"] = 16;
  j["kv_cache_quant_algo"] = nullptr;
  j["exclude_modules"] = c.unquantized;
  j["producer"] = {{"name", "qforge"}, {"version", QFORGE_VERSION_STRING}};
  return j;
}

ordered_json nvfp4_hf_quant_config(const ConfigInputs& c) {
  ordered_json j;
  j["producer"] = {{"name", "qforge"}, {"version", QFORGE_VERSION_STRING}};
  j["quantization"] = {{"quant_algo", "NVFP4"},
                       {"kv_cache_quant_algo", nullptr},
                       {"group_size", 16},
                       {"exclude_modules", c.unquantized}};
  return j;
}

std::optional<QuantWeight> read_fp8(const io::Checkpoint& ck, const std::string& m, int64_t rows, int64_t cols) {
  const std::string wname = m + ".weight";
  const auto& w = need(ck, wname, "an FP8 module");
  if (is_float_dtype(w.dtype)) return std::nullopt;
  if (w.dtype != DType::F8_E4M3 && w.dtype != DType::F8_E5M2)
    throw Error(w.file + ": tensor '" + wname + "' has dtype " + std::string(dtype_traits(w.dtype).safetensors_name) +
                ", expected F8_E4M3 (or a float dtype for a module kept unquantized)");
  expect_shape(w, {rows, cols}, "the FP8 weight");
  const io::TensorInfo* s = ck.find(m + ".weight_scale");
  if (!s) {
    if (ck.find(m + ".weight_scale_inv"))
      throw Error(w.file + ": tensor '" + m + ".weight_scale_inv': block-wise FP8 (weight_block_size) is not supported");
    need(ck, m + ".weight_scale", "an FP8 module");
  }
  const int64_t ns = numel_of(*s);
  const bool per_channel = ns == rows && rows != 1 && (s->shape == std::vector<int64_t>{rows} ||
                                                       s->shape == std::vector<int64_t>{rows, 1});
  if (ns != 1 && !per_channel)
    throw Error(s->file + ": tensor '" + m + ".weight_scale' has shape " + shape_text(s->shape) +
                ", expected one scale ([] or [1]) or one per output row ([" + std::to_string(rows) + ", 1])");
  QuantWeight q;
  q.format = w.dtype == DType::F8_E4M3 ? QuantFormat::FP8_E4M3 : QuantFormat::FP8_E5M2;
  q.rows = rows;
  q.cols = cols;
  q.params.per_channel = per_channel;
  q.params.blocksize = quant_traits(q.format).default_block;
  q.data = copy_tensor(ck, w, w.dtype, {rows, cols});
  q.scales = copy_as_f32(ck, *s, {per_channel ? rows : 1}, "weight_scale");
  for (int64_t i = 0; i < q.scales.numel(); ++i)
    if (!std::isfinite(q.scales.data<float>()[i]))
      throw Error(s->file + ": tensor '" + m + ".weight_scale' has a non-finite entry");
  return q;
}

std::optional<QuantWeight> read_nvfp4(const io::Checkpoint& ck, const std::string& m, int64_t rows, int64_t cols) {
  const std::string wname = m + ".weight";
  const auto& w = need(ck, wname, "an NVFP4 module");
  if (is_float_dtype(w.dtype)) return std::nullopt;
  const int64_t kp = (cols + 15) / 16 * 16;
  expect_dtype(w, DType::U8, "the packed NVFP4 weight");
  expect_shape(w, {rows, kp / 2}, "the packed NVFP4 weight");
  const auto& s = need(ck, m + ".weight_scale", "an NVFP4 module");
  expect_dtype(s, DType::F8_E4M3, "the NVFP4 block scales");
  expect_shape(s, {rows, kp / 16}, "the NVFP4 block scales");
  const auto& s2 = need(ck, m + ".weight_scale_2", "an NVFP4 module");
  expect_dtype(s2, DType::F32, "weight_scale_2");
  if (numel_of(s2) != 1)
    throw Error(s2.file + ": tensor '" + m + ".weight_scale_2' has shape " + shape_text(s2.shape) + ", expected a scalar");
  QuantWeight q;
  q.format = QuantFormat::NVFP4;
  q.rows = rows;
  q.cols = cols;
  q.params.blocksize = 16;
  q.data = copy_tensor(ck, w, DType::U8, {rows, kp / 2});
  q.scales = copy_tensor(ck, s, DType::F8_E4M3, {rows, kp / 16});
  q.scales2 = copy_tensor(ck, s2, DType::F32, {1});
  if (!std::isfinite(q.scales2.data<float>()[0]))
    throw Error(s2.file + ": tensor '" + m + ".weight_scale_2' is not finite");
  return q;
}

}  // namespace qforge::ckpt_detail
