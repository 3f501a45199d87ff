// quant/ckpt_gptq.cpp — int4 in the GPTQ layout (AutoGPTQ / transformers / vLLM "gptq"):
// `<m>.qweight` I32 [K/8, N], `<m>.qzeros` I32 [G, N/8], `<m>.scales` F16 [G, N], `<m>.g_idx` I32 [K].
// Written with checkpoint_format "gptq" (v1: qzeros hold zero - 1); read as v1 or "gptq_v2" (zero
// itself). Only desc_act=false with g_idx[k] == k / group_size (qforge's int4 kernels assume it).
#include "qforge/status.h"
#include "quant/ckpt_internal.h"

namespace qforge::ckpt_detail {

using nlohmann::ordered_json;

void emit_gptq(const std::string& m, const QuantWeight& q, TensorSink& out) {
  const int64_t N = q.rows, G = q.zeros.dim(0), Nw = q.zeros.dim(1);
  Tensor z = Tensor::empty(DType::I32, {G, Nw}, MemCategory::Weights, true);
  const uint32_t* src = q.zeros.data<uint32_t>();
  uint32_t* dst = z.data<uint32_t>();
  for (int64_t g = 0; g < G; ++g)
    for (int64_t n = 0; n < N; ++n) {
      const uint32_t zero = (src[g * Nw + n / 8] >> (4 * (n % 8))) & 15;
      if (zero == 0)
        throw Error("quantize int4: " + m + " row " + std::to_string(n) + " group " + std::to_string(g) +
                    " has zero point 0, which the GPTQ v1 layout (zero - 1) cannot store; use --symmetric");
      dst[g * Nw + n / 8] |= (zero - 1) << (4 * (n % 8));
    }
  out.add(m + ".qweight", q.data);
  out.add(m + ".qzeros", z);
  out.add(m + ".scales", q.scales);
  out.add(m + ".g_idx", q.g_idx);
}

ordered_json gptq_quantization_config(const ConfigInputs& c) {
  for (const auto& u : c.unquantized)
    if (u != "lm_head")
      throw Error("int4 (GPTQ layout): module '" + u + "' would stay unquantized, but a GPTQ quantization_config "
                  "cannot skip single layers; only lm_head may be skipped");
  ordered_json j;
  j["bits"] = 4;
  j["group_size"] = c.params.blocksize;
  j["damp_percent"] = 0.01;
  j["desc_act"] = false;
  j["static_groups"] = false;
  j["sym"] = c.params.symmetric;
  j["true_sequential"] = true;
  j["checkpoint_format"] = "gptq";
  j["meta"] = {{"quantizer", {"qforge:" QFORGE_VERSION_STRING}}, {"method", "rtn"}};
  j["quant_method"] = "gptq";
  return j;
}

std::optional<QuantWeight> read_gptq(const io::Checkpoint& ck, const StoredFormat& sf, const std::string& m,
                                     int64_t rows, int64_t cols) {
  const io::TensorInfo* qw = ck.find(m + ".qweight");
  if (!qw) {
    const io::TensorInfo* w = ck.find(m + ".weight");
    if (w && is_float_dtype(w->dtype)) return std::nullopt;
    need(ck, m + ".qweight", "a GPTQ module");
  }
  const int64_t N = rows, K = cols, g = sf.params.blocksize;
  const int64_t G = (K + g - 1) / g, Kw = (K + 7) / 8, Nw = (N + 7) / 8;
  expect_dtype(*qw, DType::I32, "qweight");
  expect_shape(*qw, {Kw, N}, "qweight");
  const auto& qz = need(ck, m + ".qzeros", "a GPTQ module");
  expect_dtype(qz, DType::I32, "qzeros");
  expect_shape(qz, {G, Nw}, "qzeros");
  const auto& sc = need(ck, m + ".scales", "a GPTQ module");
  expect_dtype(sc, DType::F16, "scales");
  expect_shape(sc, {G, N}, "scales");
  QuantWeight q;
  q.format = QuantFormat::INT4;
  q.rows = N;
  q.cols = K;
  q.params.blocksize = int(g);
  q.params.symmetric = sf.params.symmetric;
  q.data = copy_tensor(ck, *qw, DType::I32, {Kw, N});
  q.scales = copy_tensor(ck, sc, DType::F16, {G, N});
  q.g_idx = Tensor::empty(DType::I32, {K}, MemCategory::Weights);
  for (int64_t k = 0; k < K; ++k) q.g_idx.data<int32_t>()[k] = int32_t(k / g);
  if (const io::TensorInfo* gi = ck.find(m + ".g_idx")) {
    expect_dtype(*gi, DType::I32, "g_idx");
    expect_shape(*gi, {K}, "g_idx");
    const int32_t* v = reinterpret_cast<const int32_t*>(gi->data);
    for (int64_t k = 0; k < K; ++k)
      if (v[k] != int32_t(k / g))
        throw Error(gi->file + ": tensor '" + m + ".g_idx' entry " + std::to_string(k) + " is " + std::to_string(v[k]) +
                    ", not k / group_size (act-order g_idx is not supported)");
  }
  q.zeros = Tensor::empty(DType::I32, {G, Nw}, MemCategory::Weights, true);
  const uint32_t* src = reinterpret_cast<const uint32_t*>(qz.data);
  uint32_t* dst = q.zeros.data<uint32_t>();
  for (int64_t gi = 0; gi < G; ++gi)
    for (int64_t n = 0; n < N; ++n) {
      uint32_t zero = (src[gi * Nw + n / 8] >> (4 * (n % 8))) & 15;
      if (sf.gptq_v1) {
        if (zero == 15)
          throw Error(qz.file + ": tensor '" + m + ".qzeros' holds zero point 16 (stored 15 + 1) at group " +
                      std::to_string(gi) + " column " + std::to_string(n) + ", which a 4-bit zero cannot hold");
        ++zero;
      }
      dst[gi * Nw + n / 8] |= zero << (4 * (n % 8));
    }
  return q;
}

}  // namespace qforge::ckpt_detail
