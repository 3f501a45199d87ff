// quant/ckpt_bnb.cpp — the bitsandbytes serialization as transformers writes and reads it (spec
// bitsandbytes.md §4–§6): 4-bit `<m>.weight` U8 [(n+1)/2, 1] + absmax + quant_map (+ nested_absmax,
// nested_quant_map) + the packed quant_state JSON; 8-bit `<m>.weight` I8 + `<m>.SCB` + weight_format;
// config.json quantization_config as BitsAndBytesConfig.to_dict() writes it.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "qforge/status.h"
#include "quant/ckpt_internal.h"
#include "quant/quant_codecs.h"

namespace qforge::ckpt_detail {

using nlohmann::json;
using nlohmann::ordered_json;
using quant_detail::kDynamicMap8;
using quant_detail::kFp4Values;
using quant_detail::kNf4Values;

namespace {

constexpr int64_t kNestedBlock = 256;

// A JSON number as Python's json.dumps writes a float (shortest round-trip repr, ".0" on integers).
std::string python_float(double v) { return json(v).dump(); }

// The quant_state JSON exactly as QuantState.as_dict(packed=True) + json.dumps writes it: default
// separators ", " and ": ", keys in this order.
std::string quant_state_json(const QuantWeight& q, DType source_dtype) {
  std::string s = "{\"quant_type\": \"";
  s += q.format == QuantFormat::NF4 ? "nf4" : "fp4";
  s += "\", \"blocksize\": " + std::to_string(q.params.blocksize);
  s += ", \"dtype\": \"" + torch_dtype_name(source_dtype) + "\"";
  s += ", \"shape\": [" + std::to_string(q.rows) + ", " + std::to_string(q.cols) + "]";
  if (q.params.double_quant) {
    s += ", \"nested_blocksize\": 256, \"nested_dtype\": \"float32\", \"nested_offset\": " +
         python_float(double(q.offset));
  }
  return s + "}";
}

template <size_t N>
bool same_bits(const Tensor& t, const std::array<float, N>& ref) {
  for (size_t i = 0; i < N; ++i)
    if (f32_bits(t.data<float>()[i]) != f32_bits(ref[i])) return false;
  return true;
}

}  // namespace

void emit_bnb4(const std::string& m, const QuantWeight& q, DType source_dtype, TensorSink& out) {
  const int64_t n = q.rows * q.cols;
  const auto& table = q.format == QuantFormat::NF4 ? kNf4Values : kFp4Values;
  out.add(m + ".weight", q.data, {(n + 1) / 2, 1});
  out.add(m + ".weight.absmax", q.scales);
  out.add_f32(m + ".weight.quant_map", table.data(), 16, {16});
  if (q.params.double_quant) {
    out.add(m + ".weight.nested_absmax", q.scales2);
    out.add_f32(m + ".weight.nested_quant_map", kDynamicMap8.data(), 256, {256});
  }
  out.add_bytes(m + ".weight.quant_state.bitsandbytes__" + (q.format == QuantFormat::NF4 ? "nf4" : "fp4"),
                quant_state_json(q, source_dtype));
}

void emit_bnb8(const std::string& m, const QuantWeight& q, TensorSink& out) {
  out.add(m + ".weight", q.data);
  out.add(m + ".SCB", q.scales);
  Tensor fmt = Tensor::empty(DType::U8, {}, MemCategory::Other, true);  // 0 = "row"
  out.add(m + ".weight_format", fmt);
}

ordered_json bnb_quantization_config(const ConfigInputs& c) {
  const bool b4 = c.format == QuantFormat::NF4 || c.format == QuantFormat::FP4;
  ordered_json j;
  j["_load_in_4bit"] = b4;
  j["_load_in_8bit"] = !b4;
  j["bnb_4bit_compute_dtype"] = b4 ? torch_dtype_name(c.compute_dtype) : "float32";
  j["bnb_4bit_quant_storage"] = "uint8";
  j["bnb_4bit_quant_type"] = c.format == QuantFormat::NF4 ? "nf4" : "fp4";
  j["bnb_4bit_use_double_quant"] = b4 && c.params.double_quant;
  j["llm_int8_enable_fp32_cpu_offload"] = false;
  j["llm_int8_has_fp16_weight"] = false;
  j["llm_int8_skip_modules"] = c.unquantized;
  j["llm_int8_threshold"] = 6.0;
  j["load_in_4bit"] = b4;
  j["load_in_8bit"] = !b4;
  j["quant_method"] = "bitsandbytes";
  return j;
}

std::optional<QuantWeight> read_bnb4(const io::Checkpoint& ck, const StoredFormat&, const std::string& m,
                                     int64_t rows, int64_t cols) {
  const std::string wname = m + ".weight";
  QuantFormat fmt = QuantFormat::NF4;
  const io::TensorInfo* qs = ck.find(wname + ".quant_state.bitsandbytes__nf4");
  if (!qs) {
    qs = ck.find(wname + ".quant_state.bitsandbytes__fp4");
    fmt = QuantFormat::FP4;
  }
  if (!qs) {
    const io::TensorInfo* w = ck.find(wname);
    if (w && is_float_dtype(w->dtype)) return std::nullopt;  // a module kept unquantized
    const auto& wi = need(ck, wname, "a bitsandbytes 4-bit module");
    throw Error(wi.file + ": tensor '" + wname + "' is " + std::string(dtype_traits(wi.dtype).safetensors_name) +
                " but there is no '" + wname + ".quant_state.bitsandbytes__nf4' (or __fp4) tensor");
  }
  const std::string qs_name = wname + ".quant_state.bitsandbytes__" + (fmt == QuantFormat::NF4 ? "nf4" : "fp4");
  expect_dtype(*qs, DType::U8, "the packed quant_state JSON");
  json st;
  try {
    st = json::parse(std::string(reinterpret_cast<const char*>(qs->data), qs->nbytes));
  } catch (const json::exception&) {
    throw Error(qs->file + ": tensor '" + qs_name + "' is not valid JSON");
  }
  auto bad = [&](const std::string& what) { return Error(qs->file + ": tensor '" + qs_name + "': " + what); };
  if (!st.is_object()) throw bad("not a JSON object");
  const std::string qt = fmt == QuantFormat::NF4 ? "nf4" : "fp4";
  if (!st.contains("quant_type") || st["quant_type"] != qt) throw bad("quant_type is not \"" + qt + "\"");
  if (!st.contains("blocksize") || !st["blocksize"].is_number_integer()) throw bad("no integer blocksize");
  const int64_t B = st["blocksize"].get<int64_t>();
  if (B < 32 || B > 4096 || (B & (B - 1)) != 0) throw bad("blocksize " + std::to_string(B) + " is not a power of two in 32..4096");
  if (!st.contains("shape") || st["shape"] != json::array({rows, cols}))
    throw bad("shape " + (st.contains("shape") ? st["shape"].dump() : std::string("(missing)")) +
              ", config.json implies [" + std::to_string(rows) + ", " + std::to_string(cols) + "]");
  const bool dq = st.contains("nested_offset");
  if (dq) {
    if (!st["nested_offset"].is_number()) throw bad("nested_offset is not a number");
    if (st.value("nested_blocksize", json(256)) != 256) throw bad("nested_blocksize is not 256");
    if (st.value("nested_dtype", json("float32")) != "float32") throw bad("nested_dtype is not \"float32\"");
  }
  const int64_t n = rows * cols, nb = (n + B - 1) / B;

  QuantWeight q;
  q.format = fmt;
  q.rows = rows;
  q.cols = cols;
  q.params.blocksize = int(B);
  q.params.double_quant = dq;
  // The packed bytes may be viewed as another quant_storage dtype (e.g. bf16): the bytes are the same.
  const auto& w = need(ck, wname, "the packed 4-bit weight");
  if (w.nbytes != size_t((n + 1) / 2))
    throw Error(w.file + ": tensor '" + wname + "' holds " + std::to_string(w.nbytes) + " bytes, a " +
                std::to_string(rows) + "x" + std::to_string(cols) + " 4-bit weight needs " + std::to_string((n + 1) / 2));
  q.data = copy_tensor(ck, w, DType::U8, {(n + 1) / 2});
  const auto& am = need(ck, wname + ".absmax", "a bitsandbytes 4-bit module");
  expect_dtype(am, dq ? DType::U8 : DType::F32, dq ? "double-quantized absmax codes" : "absmax");
  expect_shape(am, {nb}, "absmax");
  q.scales = copy_tensor(ck, am, am.dtype, {nb});
  const auto& qm = need(ck, wname + ".quant_map", "a bitsandbytes 4-bit module");
  expect_dtype(qm, DType::F32, "quant_map");
  expect_shape(qm, {16}, "quant_map");
  if (!same_bits(ck.tensor(wname + ".quant_map"), fmt == QuantFormat::NF4 ? kNf4Values : kFp4Values))
    throw Error(qm.file + ": tensor '" + wname + ".quant_map' is not the standard " + qt +
                " table (custom 4-bit maps are not supported)");
  if (dq) {
    const int64_t nb2 = (nb + kNestedBlock - 1) / kNestedBlock;
    const auto& na = need(ck, wname + ".nested_absmax", "a double-quantized 4-bit module");
    expect_dtype(na, DType::F32, "nested_absmax");
    expect_shape(na, {nb2}, "nested_absmax");
    q.scales2 = copy_tensor(ck, na, DType::F32, {nb2});
    const auto& nm = need(ck, wname + ".nested_quant_map", "a double-quantized 4-bit module");
    expect_dtype(nm, DType::F32, "nested_quant_map");
    expect_shape(nm, {256}, "nested_quant_map");
    if (!same_bits(ck.tensor(wname + ".nested_quant_map"), kDynamicMap8))
      throw Error(nm.file + ": tensor '" + wname + ".nested_quant_map' is not the 8-bit dynamic map of "
                  "create_dynamic_map(signed=True) (custom maps are not supported)");
    q.offset = float(st["nested_offset"].get<double>());
  }
  return q;
}

std::optional<QuantWeight> read_bnb8(const io::Checkpoint& ck, const std::string& m, int64_t rows, int64_t cols) {
  const std::string wname = m + ".weight";
  const io::TensorInfo* scb = ck.find(m + ".SCB");
  if (!scb) {
    const io::TensorInfo* w = ck.find(wname);
    if (w && is_float_dtype(w->dtype)) return std::nullopt;
    const auto& wi = need(ck, wname, "a bitsandbytes 8-bit module");
    throw Error(wi.file + ": tensor '" + wname + "' is " + std::string(dtype_traits(wi.dtype).safetensors_name) +
                " but there is no '" + m + ".SCB' tensor");
  }
  const auto& w = need(ck, wname, "a bitsandbytes 8-bit module");
  expect_dtype(w, DType::I8, "the int8 weight");
  expect_shape(w, {rows, cols}, "the int8 weight");
  expect_dtype(*scb, DType::F32, "SCB");
  expect_shape(*scb, {rows}, "SCB");
  if (const io::TensorInfo* f = ck.find(m + ".weight_format")) {
    const bool is_int = f->dtype == DType::U8 || f->dtype == DType::I8 || f->dtype == DType::I32 || f->dtype == DType::I64;
    if (!is_int || numel_of(*f) != 1 || std::any_of(f->data, f->data + f->nbytes, [](uint8_t b) { return b != 0; }))
      throw Error(f->file + ": tensor '" + m + ".weight_format' is not 0 (\"row\"); the col32/turing/ampere layouts "
                  "of bitsandbytes < 0.45 are not supported");
  }
  QuantWeight q;
  q.format = QuantFormat::INT8;
  q.rows = rows;
  q.cols = cols;
  q.params.blocksize = quant_traits(QuantFormat::INT8).default_block;
  q.data = copy_tensor(ck, w, DType::I8, {rows, cols});
  q.scales = copy_tensor(ck, *scb, DType::F32, {rows});
  const float* s = q.scales.data<float>();
  for (int64_t r = 0; r < rows; ++r)
    if (!std::isfinite(s[r]) || s[r] < 0.0f)
      throw Error(scb->file + ": tensor '" + m + ".SCB' row " + std::to_string(r) + " is not a finite absmax");
  return q;
}

}  // namespace qforge::ckpt_detail
