// quant/quant_checkpoint.cpp — reading pre-quantized checkpoints: quantization_config parsing
// (bitsandbytes, compressed-tensors FP8, HF "fp8", ModelOpt FP8/NVFP4, GPTQ), dispatch of one linear
// module to its serialization's reader (ckpt_*.cpp), and the strict tensor lookups they share.
#include "quant/quant_checkpoint.h"

#include <algorithm>
#include <cctype>
#include <cstring>

#include "qforge/status.h"
#include "quant/ckpt_internal.h"

namespace qforge {

using nlohmann::json;

namespace ckpt_detail {

std::string shape_text(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

bool is_float_dtype(DType d) { return d == DType::F32 || d == DType::F16 || d == DType::BF16; }

std::string torch_dtype_name(DType d) {
  switch (d) {
    case DType::F32: return "float32";
    case DType::F16: return "float16";
    case DType::BF16: return "bfloat16";
    default: throw Error("dtype " + std::string(dtype_name(d)) + " is not a float dtype (f32, f16, bf16)");
  }
}

void TensorSink::add_bytes(std::string name, const std::string& bytes) {
  Tensor t = Tensor::empty(DType::U8, {int64_t(bytes.size())}, MemCategory::Other);
  std::memcpy(t.raw(), bytes.data(), bytes.size());
  add(std::move(name), std::move(t));
}

void TensorSink::add_f32(std::string name, const float* v, int64_t n, std::vector<int64_t> shape) {
  Tensor t = Tensor::empty(DType::F32, {n}, MemCategory::Other);
  std::memcpy(t.raw(), v, size_t(n) * 4);
  add(std::move(name), std::move(t), std::move(shape));
}

const io::TensorInfo& need(const io::Checkpoint& ck, const std::string& name, const std::string& what) {
  const io::TensorInfo* t = ck.find(name);
  if (!t) throw Error(ck.dir().string() + ": missing tensor '" + name + "' (needed by " + what + ")");
  return *t;
}

void expect_dtype(const io::TensorInfo& t, DType d, const std::string& what) {
  if (t.dtype != d)
    throw Error(t.file + ": tensor '" + t.name + "' (" + what + ") has dtype " +
                std::string(dtype_traits(t.dtype).safetensors_name) + ", expected " +
                std::string(dtype_traits(d).safetensors_name));
}

void expect_shape(const io::TensorInfo& t, const std::vector<int64_t>& shape, const std::string& what) {
  if (t.shape != shape)
    throw Error(t.file + ": tensor '" + t.name + "' (" + what + ") has shape " + shape_text(t.shape) + ", expected " +
                shape_text(shape));
}

int64_t numel_of(const io::TensorInfo& t) {
  int64_t n = 1;
  for (auto d : t.shape) n *= d;
  return n;
}

Tensor copy_tensor(const io::Checkpoint&, const io::TensorInfo& t, DType dt, std::vector<int64_t> shape) {
  Tensor out = Tensor::empty(dt, std::move(shape), MemCategory::Weights);
  QF_CHECK(out.nbytes() == t.nbytes, "copy_tensor: byte count mismatch");
  std::memcpy(out.raw(), t.data, t.nbytes);
  return out;
}

Tensor copy_as_f32(const io::Checkpoint&, const io::TensorInfo& t, std::vector<int64_t> shape, const std::string& what) {
  if (!is_float_dtype(t.dtype))
    throw Error(t.file + ": tensor '" + t.name + "' (" + what + ") has dtype " +
                std::string(dtype_traits(t.dtype).safetensors_name) + ", expected F32, F16 or BF16");
  Tensor out = Tensor::empty(DType::F32, std::move(shape), MemCategory::Weights);
  QF_CHECK(out.numel() == numel_of(t), "copy_as_f32: element count mismatch");
  convert_floats(t.data, t.dtype, out.raw(), DType::F32, size_t(out.numel()));
  return out;
}

StoredFormat parse_stored_format(const std::string& text) {
  json q;
  try {
    q = json::parse(text);
  } catch (const json::exception&) {
    throw Error("config.json: quantization_config is not valid JSON");
  }
  auto fail = [](const std::string& m) { return Error("config.json: quantization_config: " + m); };
  if (!q.is_object()) throw fail("not an object");
  auto str = [&](const char* k, const std::string& def) {
    if (!q.contains(k) || q[k].is_null()) return def;
    if (!q[k].is_string()) throw fail(std::string(k) + " is not a string");
    std::string s = q[k].get<std::string>();
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return char(std::tolower(c)); });
    return s;
  };
  auto flag = [&](const char* k) { return q.contains(k) && q[k].is_boolean() && q[k].get<bool>(); };
  const std::string method = str("quant_method", "");
  StoredFormat sf;
  if (method == "bitsandbytes") {
    if (flag("load_in_4bit") || flag("_load_in_4bit")) {
      sf.ser = Serialization::Bnb4;
      const std::string qt = str("bnb_4bit_quant_type", "fp4");  // BitsAndBytesConfig's default is fp4
      if (qt != "nf4" && qt != "fp4") throw fail("bnb_4bit_quant_type '" + qt + "' is not nf4 or fp4");
      sf.format = qt == "nf4" ? QuantFormat::NF4 : QuantFormat::FP4;
      sf.params.double_quant = flag("bnb_4bit_use_double_quant");
    } else if (flag("load_in_8bit") || flag("_load_in_8bit")) {
      sf.ser = Serialization::Bnb8;
      sf.format = QuantFormat::INT8;
      if (flag("llm_int8_has_fp16_weight")) throw fail("llm_int8_has_fp16_weight=true checkpoints are not supported");
    } else {
      throw fail("bitsandbytes with neither load_in_4bit nor load_in_8bit");
    }
  } else if (method == "compressed-tensors") {
    const std::string fmt = str("format", "");
    if (fmt != "float-quantized" && fmt != "naive-quantized")
      throw fail("compressed-tensors format '" + fmt + "' is not supported (qforge reads float-quantized FP8)");
    if (!q.contains("config_groups") || !q["config_groups"].is_object() || q["config_groups"].empty())
      throw fail("compressed-tensors without config_groups");
    for (auto& [name, g] : q["config_groups"].items()) {
      const json w = g.is_object() ? g.value("weights", json()) : json();
      if (!w.is_object() || w.value("num_bits", 0) != 8 || w.value("type", std::string()) != "float")
        throw fail("config_groups." + name + ".weights is not 8-bit float (only FP8 compressed-tensors is supported)");
      const std::string st = w.value("strategy", std::string("tensor"));
      if (st != "tensor" && st != "channel")
        throw fail("config_groups." + name + ".weights.strategy '" + st + "' is not supported (tensor or channel)");
    }
    sf.ser = Serialization::CompressedTensorsFp8;
    sf.format = QuantFormat::FP8_E4M3;
  } else if (method == "fp8") {
    if (q.contains("weight_block_size") && !q["weight_block_size"].is_null())
      throw fail("fp8 with weight_block_size " + q["weight_block_size"].dump() + " (block-wise FP8) is not supported");
    sf.ser = Serialization::HfFp8;
    sf.format = QuantFormat::FP8_E4M3;
  } else if (method == "modelopt") {
    const json& src = q.contains("quantization") && q["quantization"].is_object() ? q["quantization"] : q;
    std::string algo = src.value("quant_algo", std::string());
    std::transform(algo.begin(), algo.end(), algo.begin(), [](unsigned char c) { return char(std::toupper(c)); });
    if (algo == "FP8" || algo == "FP8_PER_CHANNEL_PER_TOKEN") {
      sf.ser = Serialization::ModeloptFp8;
      sf.format = QuantFormat::FP8_E4M3;
    } else if (algo == "NVFP4") {
      sf.ser = Serialization::ModeloptNvfp4;
      sf.format = QuantFormat::NVFP4;
    } else {
      throw fail("modelopt quant_algo '" + algo + "' is not supported (FP8, FP8_PER_CHANNEL_PER_TOKEN, NVFP4)");
    }
  } else if (method == "gptq") {
    if (q.value("bits", 0) != 4) throw fail("gptq bits " + q.value("bits", json(nullptr)).dump() + " (only 4 is supported)");
    if (q.value("desc_act", false)) throw fail("gptq desc_act=true (act-order) is not supported");
    const int g = q.value("group_size", 0);
    if (g != 32 && g != 64 && g != 128) throw fail("gptq group_size " + std::to_string(g) + " (32, 64 or 128 supported)");
    const std::string cf = str("checkpoint_format", "gptq");
    if (cf != "gptq" && cf != "gptq_v2") throw fail("gptq checkpoint_format '" + cf + "' is not gptq or gptq_v2");
    sf.ser = Serialization::Gptq;
    sf.format = QuantFormat::INT4;
    sf.params.blocksize = g;
    sf.params.symmetric = q.value("sym", true);
    sf.gptq_v1 = cf == "gptq";
  } else {
    throw fail("quant_method '" + method +
               "' is not supported (qforge reads bitsandbytes, compressed-tensors FP8, fp8, modelopt FP8/NVFP4, gptq)");
  }
  return sf;
}

}  // namespace ckpt_detail

using namespace ckpt_detail;

std::optional<QuantFormat> prequantized_format(const ModelConfig& cfg) {
  if (cfg.quantization_config_json.empty()) return std::nullopt;
  return parse_stored_format(cfg.quantization_config_json).format;
}

std::optional<QuantWeight> load_prequantized_linear(const io::Checkpoint& ck, const ModelConfig& cfg,
                                                    const std::string& module, int64_t out, int64_t in) {
  if (cfg.quantization_config_json.empty()) return std::nullopt;
  const StoredFormat sf = parse_stored_format(cfg.quantization_config_json);
  switch (sf.ser) {
    case Serialization::Bnb4: return read_bnb4(ck, sf, module, out, in);
    case Serialization::Bnb8: return read_bnb8(ck, module, out, in);
    case Serialization::CompressedTensorsFp8:
    case Serialization::HfFp8:
    case Serialization::ModeloptFp8: return read_fp8(ck, module, out, in);
    case Serialization::ModeloptNvfp4: return read_nvfp4(ck, module, out, in);
    case Serialization::Gptq: return read_gptq(ck, sf, module, out, in);
  }
  return std::nullopt;
}

}  // namespace qforge
