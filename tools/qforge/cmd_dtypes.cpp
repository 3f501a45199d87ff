// tools/qforge/cmd_dtypes.cpp — `qforge dtypes [--json]`: every element dtype and weight format with its
// bits, effective bits per weight (measured by quantizing a 256 x 4096 weight with the reference
// quantizer and counting every byte held), range (max finite, smallest normal/subnormal, epsilon, all
// decoded from the codecs, not typed in) and which NVIDIA GPUs run it natively on tensor cores.
#include <cmath>
#include <limits>
#include <optional>
#include <random>

#include "command.h"
#include "qforge/dtype.h"
#include "qforge/quant.h"
#include "quant/quant_codecs.h"

namespace qforge::cli {
namespace {
using quant_detail::Fp8Kind;

struct Row {
  std::string name, kind, element, native;
  int bits = 0;
  double bpw = 0;
  std::optional<double> max_finite, min_normal, min_subnormal, epsilon;
};

// Range of a float format given its decoder over all codes, the code of the smallest normal (exponent
// field 1, mantissa 0) and the code of 1.0.
template <class Decode>
void fill_range(Row& r, int n_codes, Decode dec, uint32_t min_normal_code, uint32_t one_code) {
  double mx = 0;
  for (int c = 0; c < n_codes; ++c) {
    const double v = dec(uint32_t(c));
    if (std::isfinite(v)) mx = std::max(mx, v);
  }
  r.max_finite = mx;
  r.min_normal = dec(min_normal_code);
  r.min_subnormal = dec(1);
  r.epsilon = dec(one_code + 1) - dec(one_code);
}

double measured_bpw(QuantFormat f, QuantParams p = {}) {
  const int64_t R = 256, C = 4096;
  Tensor w = Tensor::empty(DType::F32, {R, C});
  std::mt19937 rng(1);
  std::normal_distribution<float> d(0.0f, 0.02f);
  for (int64_t i = 0; i < R * C; ++i) w.data<float>()[i] = d(rng);
  return double(quantize_weight(w, f, p).storage_bytes()) * 8.0 / double(R * C);
}

std::vector<Row> build_rows() {
  std::vector<Row> rows;
  const std::string tc16 = "tensor cores sm_80+ (A100, H100, B200, RTX 30/40/50)";
  const std::string deq = "none: dequantized to fp16/bf16 in the kernel";
  {
    Row r{"fp32", "float", "fp32", "CUDA cores everywhere; tensor cores only as TF32 (sm_80+)"};
    r.bits = 32;
    r.bpw = 32;
    r.max_finite = std::numeric_limits<float>::max();
    r.min_normal = std::numeric_limits<float>::min();
    r.min_subnormal = std::numeric_limits<float>::denorm_min();
    r.epsilon = std::numeric_limits<float>::epsilon();
    rows.push_back(r);
  }
  {
    Row r{"fp16", "float", "fp16", tc16};
    r.bits = 16;
    r.bpw = 16;
    fill_range(r, 65536, [](uint32_t c) { return double(f16_to_f32(uint16_t(c))); }, 0x0400, f32_to_f16(1.0f));
    rows.push_back(r);
  }
  {
    Row r{"bf16", "float", "bf16", tc16};
    r.bits = 16;
    r.bpw = 16;
    fill_range(r, 65536, [](uint32_t c) { return double(bf16_to_f32(uint16_t(c))); }, 0x0080, f32_to_bf16(1.0f));
    rows.push_back(r);
  }
  for (auto [name, k, nc] : {std::tuple{"fp8_e4m3", Fp8Kind::E4M3, 0x08u}, std::tuple{"fp8_e5m2", Fp8Kind::E5M2, 0x04u}}) {
    Row r{name, "float + fp32 scale per tensor/channel", name, "tensor cores sm_89 (Ada), sm_90+ (Hopper, Blackwell)"};
    r.bits = 8;
    r.bpw = measured_bpw(k == Fp8Kind::E4M3 ? QuantFormat::FP8_E4M3 : QuantFormat::FP8_E5M2);
    fill_range(r, 256, [k](uint32_t c) { return double(quant_detail::fp8_to_f32(uint8_t(c), k)); }, nc,
               quant_detail::f32_to_fp8(1.0f, k));
    rows.push_back(r);
  }
  {
    Row r{"e2m1", "float (element of nvfp4/mxfp4)", "e2m1", "tensor cores sm_100+/sm_120+ (Blackwell) with block scales"};
    r.bits = 4;
    r.bpw = 4;
    fill_range(r, 16, [](uint32_t c) { return double(quant_detail::e2m1_to_f32(uint8_t(c))); }, 0x2,
               quant_detail::f32_to_e2m1(1.0f));
    rows.push_back(r);
  }
  auto qrow = [&](const std::string& name, QuantFormat f, const std::string& kind, const std::string& element,
                  int bits, double maxv, const std::string& native, QuantParams p = {}) {
    Row r{name, kind, element, native};
    r.bits = bits;
    r.bpw = measured_bpw(f, p);
    r.max_finite = maxv;
    rows.push_back(r);
  };
  qrow("int8", QuantFormat::INT8, "int8 + fp32 absmax per row (LLM.int8)", "int8", 8, 127, "tensor cores sm_80+ (int8 mma)");
  qrow("int4", QuantFormat::INT4, "int4 + f16 scale + 4-bit zero per 128 along K (GPTQ)", "uint4", 4, 15, deq);
  double nf4max = 0, fp4max = 0;
  for (float v : quant_detail::kNf4Values) nf4max = std::max(nf4max, double(std::fabs(v)));
  for (float v : quant_detail::kFp4Values) fp4max = std::max(fp4max, double(std::fabs(v)));
  qrow("nf4", QuantFormat::NF4, "NF4 table x fp32 absmax per 64", "nf4 code", 4, nf4max, deq);
  QuantParams dq;
  dq.double_quant = true;
  qrow("nf4+dq", QuantFormat::NF4, "NF4, absmax double-quantized (8-bit per 64, fp32 per 16384)", "nf4 code", 4, nf4max, deq, dq);
  qrow("fp4(bnb)", QuantFormat::FP4, "bnb FP4 table x fp32 absmax per 64", "bnb fp4 code", 4, fp4max, deq);
  double e2m1max = 0;
  for (float v : quant_detail::kE2M1Values) e2m1max = std::max(e2m1max, double(v));
  qrow("nvfp4", QuantFormat::NVFP4, "e2m1 x e4m3 scale per 16 x fp32 per tensor", "e2m1", 4, e2m1max,
       "tensor cores sm_100+/sm_120+ (Blackwell, block-scaled mma)");
  qrow("mxfp4", QuantFormat::MXFP4, "e2m1 x e8m0 scale per 32", "e2m1", 4, e2m1max,
       "tensor cores sm_100+/sm_120+ (Blackwell, block-scaled mma)");
  qrow("q4_0", QuantFormat::Q4_0, "GGUF: f16 d + 32 x 4-bit", "uint4 - 8", 4, 8, deq);
  qrow("q8_0", QuantFormat::Q8_0, "GGUF: f16 d + 32 x int8", "int8", 8, 127, deq);
  qrow("q4_k", QuantFormat::Q4_K, "GGUF: 256-superblock, f16 d/dmin, 6-bit scale/min per 32", "uint4", 4, 15, deq);
  qrow("q4_1", QuantFormat::Q4_1, "GGUF: f16 d and min + 32 x 4-bit", "uint4", 4, 15, deq);
  qrow("q5_0", QuantFormat::Q5_0, "GGUF: f16 d + 32 x 5-bit", "uint5 - 16", 5, 16, deq);
  qrow("q5_1", QuantFormat::Q5_1, "GGUF: f16 d and min + 32 x 5-bit", "uint5", 5, 31, deq);
  qrow("q5_k", QuantFormat::Q5_K, "GGUF: 256-superblock, f16 d/dmin, 6-bit scale/min per 32", "uint5", 5, 31, deq);
  qrow("q2_k", QuantFormat::Q2_K, "GGUF: 256-superblock, f16 d/dmin, 4-bit scale/min per 16", "uint2", 2, 3, deq);
  qrow("q3_k", QuantFormat::Q3_K, "GGUF: 256-superblock, f16 d, 6-bit scale per 16", "int3", 3, 4, deq);
  qrow("q6_k", QuantFormat::Q6_K, "GGUF: 256-superblock, f16 d, int8 scale per 16", "uint6 - 32", 6, 32, deq);
  return rows;
}

std::string num(const std::optional<double>& v) {
  if (!v) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", *v);
  return buf;
}

Registrar reg("dtypes", "List element dtypes and weight formats: bits, bits/weight, range, native GPUs",
              [](CLI::App& app) {
  auto json = std::make_shared<bool>(false);
  app.add_flag("--json", *json, "Print one JSON object {\"dtypes\":[...]}");
  return [json]() -> int {
    const auto rows = build_rows();
    if (*json) {
      nlohmann::json arr = nlohmann::json::array();
      auto opt = [](const std::optional<double>& v) { return v ? nlohmann::json(*v) : nlohmann::json(nullptr); };
      for (const auto& r : rows)
        arr.push_back({{"name", r.name}, {"kind", r.kind}, {"element", r.element}, {"bits", r.bits},
                       {"bits_per_weight", r.bpw}, {"max_finite", opt(r.max_finite)},
                       {"min_normal", opt(r.min_normal)}, {"min_subnormal", opt(r.min_subnormal)},
                       {"epsilon", opt(r.epsilon)}, {"native", r.native}});
      print_json({{"dtypes", arr}, {"bits_per_weight_measured_on", "256x4096 weight, default blocks"}});
      return 0;
    }
    std::printf("%-9s %4s %8s %12s %12s %12s %10s  %s\n", "dtype", "bits", "bits/w", "max", "min normal",
                "min subnorm", "epsilon", "native on NVIDIA GPUs");
    for (const auto& r : rows)
      std::printf("%-9s %4d %8.4f %12s %12s %12s %10s  %s\n", r.name.c_str(), r.bits, r.bpw, num(r.max_finite).c_str(),
                  num(r.min_normal).c_str(), num(r.min_subnormal).c_str(), num(r.epsilon).c_str(), r.native.c_str());
    std::printf("bits/w: effective bits per weight with every scale, measured on a 256x4096 weight at default blocks;\n"
                "max for quantized formats is the largest element magnitude before its scale.\n");
    return 0;
  };
});
}  // namespace
}  // namespace qforge::cli
