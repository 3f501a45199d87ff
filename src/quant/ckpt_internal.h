// quant/ckpt_internal.h — what the per-serialization files (ckpt_bnb.cpp, ckpt_fp8_nvfp4.cpp,
// ckpt_gptq.cpp) share with the checkpoint reader/writer in quant_checkpoint.cpp: the parsed
// quantization_config, a sink collecting the tensors of one module, and strict tensor lookups
// whose errors name the file and tensor.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "io/checkpoint.h"
#include "qforge/quant.h"

namespace qforge::ckpt_detail {

enum class Serialization { Bnb4, Bnb8, CompressedTensorsFp8, HfFp8, ModeloptFp8, ModeloptNvfp4, Gptq };

// What config.json's quantization_config says.
struct StoredFormat {
  Serialization ser = Serialization::Bnb4;
  QuantFormat format = QuantFormat::None;
  QuantParams params;         // bnb: double_quant; gptq: group size, sym
  bool gptq_v1 = true;        // gptq: qzeros store zero - 1 (checkpoint_format "gptq")
};
// Throws qforge::Error("config.json: ...") for a method or option qforge cannot read.
StoredFormat parse_stored_format(const std::string& quantization_config_json);

// One output tensor: an owned (or mapped) Tensor written under `name` with `shape` (the bytes are
// the tensor's, the shape may differ, e.g. bnb's [n/2, 1] view of a flat buffer).
struct OutTensor {
  std::string name;
  Tensor t;
  std::vector<int64_t> shape;
};
struct TensorSink {
  std::vector<OutTensor> tensors;
  void add(std::string name, Tensor t) {
    auto s = t.shape();
    tensors.push_back({std::move(name), std::move(t), std::move(s)});
  }
  void add(std::string name, Tensor t, std::vector<int64_t> shape) {
    tensors.push_back({std::move(name), std::move(t), std::move(shape)});
  }
  void add_bytes(std::string name, const std::string& bytes);       // U8 [len]
  void add_f32(std::string name, const float* v, int64_t n, std::vector<int64_t> shape);
};

// ---- strict lookups for readers ----
// The tensor `name`; throws "<dir>: missing tensor 'name' (needed by <what>)".
const io::TensorInfo& need(const io::Checkpoint& ck, const std::string& name, const std::string& what);
// Throws "<file>: tensor 'name' has dtype X, expected Y" / "... has shape [..], expected [..]".
void expect_dtype(const io::TensorInfo& t, DType d, const std::string& what);
void expect_shape(const io::TensorInfo& t, const std::vector<int64_t>& shape, const std::string& what);
int64_t numel_of(const io::TensorInfo& t);
// An owned copy of the stored bytes with the given dtype and shape.
Tensor copy_tensor(const io::Checkpoint& ck, const io::TensorInfo& t, DType dt, std::vector<int64_t> shape);
// An owned F32 copy of a float tensor of any float dtype (F32/F16/BF16), shape given.
Tensor copy_as_f32(const io::Checkpoint& ck, const io::TensorInfo& t, std::vector<int64_t> shape,
                   const std::string& what);
bool is_float_dtype(DType d);
std::string shape_text(const std::vector<int64_t>& s);

// The inputs of a quantization_config: the format, its parameters, the compute dtype and the full
// names of the linear modules kept unquantized (lm_head included).
struct ConfigInputs {
  QuantFormat format = QuantFormat::None;
  QuantParams params;
  DType compute_dtype = DType::BF16;
  std::vector<std::string> unquantized;
};
std::string torch_dtype_name(DType d);  // "bfloat16", "float16", "float32"

// ---- per serialization: write one quantized module, its config; read a module back ----
// bitsandbytes (ckpt_bnb.cpp)
void emit_bnb4(const std::string& module, const QuantWeight& q, DType source_dtype, TensorSink& out);
void emit_bnb8(const std::string& module, const QuantWeight& q, TensorSink& out);
nlohmann::ordered_json bnb_quantization_config(const ConfigInputs& c);
std::optional<QuantWeight> read_bnb4(const io::Checkpoint& ck, const StoredFormat& sf, const std::string& module,
                                     int64_t rows, int64_t cols);
std::optional<QuantWeight> read_bnb8(const io::Checkpoint& ck, const std::string& module, int64_t rows, int64_t cols);

// FP8 compressed-tensors / HF fp8 / ModelOpt FP8, ModelOpt NVFP4 (ckpt_fp8_nvfp4.cpp)
void emit_fp8(const std::string& module, const QuantWeight& q, TensorSink& out);
// input_amax: the bound on |input| the NVFP4 input_scale (= input_amax / 2688) is made from.
void emit_nvfp4(const std::string& module, const QuantWeight& q, float input_amax, TensorSink& out);
nlohmann::ordered_json fp8_quantization_config(const ConfigInputs& c);
nlohmann::ordered_json nvfp4_quantization_config(const ConfigInputs& c);
nlohmann::ordered_json nvfp4_hf_quant_config(const ConfigInputs& c);  // hf_quant_config.json
std::optional<QuantWeight> read_fp8(const io::Checkpoint& ck, const std::string& module, int64_t rows, int64_t cols);
std::optional<QuantWeight> read_nvfp4(const io::Checkpoint& ck, const std::string& module, int64_t rows, int64_t cols);

// GPTQ (ckpt_gptq.cpp)
void emit_gptq(const std::string& module, const QuantWeight& q, TensorSink& out);
nlohmann::ordered_json gptq_quantization_config(const ConfigInputs& c);
std::optional<QuantWeight> read_gptq(const io::Checkpoint& ck, const StoredFormat& sf, const std::string& module,
                                     int64_t rows, int64_t cols);

}  // namespace qforge::ckpt_detail
