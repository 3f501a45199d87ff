// memory/estimate.cpp — parameter counts per component, weight storage schemes and their bytes,
// KV cache, runtime overhead and the largest context that fits a device (issue 5). Every number
// is computed from the config's shapes; the formulas are written out in docs/memory.md.
#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <string>

#include "qforge/memory_estimate.h"
#include "qforge/status.h"

namespace qforge {

// ---- parameters -------------------------------------------------------------------------------

void validate_for_estimate(const ModelConfig& c) {
  const std::array<std::pair<const char*, int64_t>, 7> fields = {{
      {"vocab_size", c.vocab_size},
      {"hidden_size", c.hidden_size},
      {"intermediate_size", c.intermediate_size},
      {"num_hidden_layers", c.num_hidden_layers},
      {"num_attention_heads", c.num_attention_heads},
      {"num_key_value_heads", c.num_key_value_heads},
      {"head_dim", c.head_dim},
  }};
  for (const auto& [name, v] : fields)
    if (v <= 0)
      throw Error(std::string("model config: ") + name + " must be positive for a memory estimate (got " +
                  std::to_string(v) + ")");
}

std::vector<LinearShape> layer_linears(const ModelConfig& c) {
  const int64_t h = c.hidden_size, i = c.intermediate_size;
  return {
      {"q_proj", c.q_dim(), h, c.attention_bias},
      {"k_proj", c.kv_dim(), h, c.attention_bias},
      {"v_proj", c.kv_dim(), h, c.attention_bias},
      {"o_proj", h, c.q_dim(), c.o_proj_bias},
      {"gate_proj", i, h, c.mlp_bias},
      {"up_proj", i, h, c.mlp_bias},
      {"down_proj", h, i, c.mlp_bias},
  };
}

namespace {
bool is_attention(std::string_view name) {
  return name == "q_proj" || name == "k_proj" || name == "v_proj" || name == "o_proj";
}
}  // namespace

ParamCounts count_params(const ModelConfig& c) {
  validate_for_estimate(c);
  ParamCounts p;
  const int64_t L = c.num_hidden_layers, h = c.hidden_size;
  p.embeddings = c.vocab_size * h;
  p.lm_head = c.tie_word_embeddings ? 0 : c.vocab_size * h;
  p.norms = L * 2 * h + h;  // input_layernorm + post_attention_layernorm per layer, final norm
  for (const auto& l : layer_linears(c)) {
    const int64_t w = L * l.out_features * l.in_features, b = l.has_bias ? L * l.out_features : 0;
    if (is_attention(l.name)) {
      p.attention += w;
      p.attention_biases += b;
    } else {
      p.mlp += w;
      p.mlp_biases += b;
    }
  }
  return p;
}

// ---- schemes ----------------------------------------------------------------------------------

namespace {

WeightScheme make_scheme(std::string name, QuantFormat f, std::string_view desc, int block = 0,
                         bool dq = false, bool per_channel = false, DType dt = DType::BF16) {
  WeightScheme s;
  s.name = std::move(name);
  s.format = f;
  s.params.blocksize = block;
  s.params.double_quant = dq;
  s.params.per_channel = per_channel;
  s.dtype = dt;
  s.description = desc;
  return s;
}

const std::vector<WeightScheme>& all_schemes() {
  using F = QuantFormat;
  static const std::vector<WeightScheme> v = {
      make_scheme("fp32", F::None, "float32 everywhere", 0, false, false, DType::F32),
      make_scheme("fp16", F::None, "float16 everywhere", 0, false, false, DType::F16),
      make_scheme("bf16", F::None, "bfloat16 everywhere", 0, false, false, DType::BF16),
      make_scheme("int8", F::INT8, "LLM.int8: int8 + fp32 row absmax (SCB)"),
      make_scheme("fp8", F::FP8_E4M3, "fp8 e4m3 + one fp32 scale per tensor"),
      make_scheme("fp8-channel", F::FP8_E4M3, "fp8 e4m3 + fp32 scale per output channel", 0, false, true),
      make_scheme("fp8-e5m2", F::FP8_E5M2, "fp8 e5m2 + one fp32 scale per tensor"),
      make_scheme("nf4", F::NF4, "bitsandbytes NF4, fp32 absmax per 64", 64),
      make_scheme("nf4-dq", F::NF4, "bitsandbytes NF4, double-quantized absmax", 64, true),
      make_scheme("fp4", F::FP4, "bitsandbytes FP4, fp32 absmax per 64", 64),
      make_scheme("fp4-dq", F::FP4, "bitsandbytes FP4, double-quantized absmax", 64, true),
      make_scheme("nvfp4", F::NVFP4, "E2M1 + e4m3 scale per 16 + fp32 tensor scale"),
      make_scheme("mxfp4", F::MXFP4, "E2M1 + e8m0 scale per 32"),
      make_scheme("int4-g32", F::INT4, "GPTQ int4, group 32", 32),
      make_scheme("int4-g64", F::INT4, "GPTQ int4, group 64", 64),
      make_scheme("int4-g128", F::INT4, "GPTQ int4, group 128", 128),
      make_scheme("q4_0", F::Q4_0, "GGUF Q4_0: 18 bytes per 32"),
      make_scheme("q8_0", F::Q8_0, "GGUF Q8_0: 34 bytes per 32"),
      make_scheme("q4_k", F::Q4_K, "GGUF Q4_K: 144 bytes per 256"),
      make_scheme("q5_0", F::Q5_0, "GGUF Q5_0: 22 bytes per 32"),
      make_scheme("q6_k", F::Q6_K, "GGUF Q6_K: 210 bytes per 256"),
      make_scheme("q4_1", F::Q4_1, "GGUF Q4_1: 20 bytes per 32"),
      make_scheme("q5_1", F::Q5_1, "GGUF Q5_1: 24 bytes per 32"),
      make_scheme("q5_k", F::Q5_K, "GGUF Q5_K: 176 bytes per 256"),
      make_scheme("q2_k", F::Q2_K, "GGUF Q2_K: 84 bytes per 256"),
      make_scheme("q3_k", F::Q3_K, "GGUF Q3_K: 110 bytes per 256"),
  };
  return v;
}

std::string lower(std::string_view s) {
  std::string l(s);
  for (auto& ch : l) ch = char(std::tolower(static_cast<unsigned char>(ch)));
  return l;
}

}  // namespace

std::optional<WeightScheme> parse_weight_scheme(std::string_view name) {
  std::string l = lower(name);
  static const std::array<std::pair<std::string_view, std::string_view>, 12> aliases = {{
      {"f32", "fp32"}, {"float32", "fp32"}, {"f16", "fp16"}, {"float16", "fp16"}, {"bfloat16", "bf16"},
      {"nf4+dq", "nf4-dq"}, {"nf4-double-quant", "nf4-dq"}, {"fp4+dq", "fp4-dq"}, {"int4", "int4-g128"},
      {"fp8-e4m3", "fp8"}, {"int4_g128", "int4-g128"}, {"fp16/bf16", "bf16"},
  }};
  for (const auto& [a, target] : aliases)
    if (l == a) l = target;
  for (const auto& s : all_schemes())
    if (s.name == l) return s;
  // Other spellings the quant traits table knows ("e4m3", "bnb-nf4", "fp8_e5m2"): its default params.
  if (auto f = parse_quant_format(l))
    for (const auto& s : all_schemes())
      if (s.format == *f && !s.params.double_quant && !s.params.per_channel &&
          (s.format != QuantFormat::INT4 || s.params.blocksize == 128))
        return s;
  return std::nullopt;
}

std::vector<std::string> weight_scheme_names() {
  std::vector<std::string> v;
  for (const auto& s : all_schemes()) v.push_back(s.name);
  return v;
}

std::vector<WeightScheme> table_weight_schemes() {
  std::vector<WeightScheme> v;
  for (std::string_view n : {"fp32", "bf16", "int8", "fp8", "nf4", "nf4-dq", "nvfp4", "int4-g128", "q4_0"})
    v.push_back(*parse_weight_scheme(n));
  return v;
}

double analytic_bits_per_weight(const WeightScheme& s) {
  const double B = s.params.blocksize;
  switch (s.format) {
    case QuantFormat::None: return 8.0 * double(dtype_size(s.dtype));
    case QuantFormat::INT8:
    case QuantFormat::FP8_E4M3:
    case QuantFormat::FP8_E5M2: return 8.0;  // + 32 bits per row / per tensor → 0
    case QuantFormat::NF4:
    case QuantFormat::FP4: {
      const double b = B > 0 ? B : 64.0;
      // 4-bit codes + per block: fp32 absmax, or uint8 code + fp32 per 256 blocks.
      return s.params.double_quant ? 4.0 + 8.0 / b + 32.0 / (256.0 * b) : 4.0 + 32.0 / b;
    }
    case QuantFormat::NVFP4: return 4.0 + 8.0 / 16.0;
    case QuantFormat::MXFP4: return 4.0 + 8.0 / 32.0;
    case QuantFormat::INT4: {
      const double g = B > 0 ? B : 128.0;
      return 4.0 + 16.0 / g + 4.0 / g;  // fp16 scale per group + int32 qzeros per 8 columns per group
    }
    case QuantFormat::Q4_0: return 18.0 * 8.0 / 32.0;
    case QuantFormat::Q8_0: return 34.0 * 8.0 / 32.0;
    case QuantFormat::Q4_K: return 144.0 * 8.0 / 256.0;
    case QuantFormat::Q5_0: return 22.0 * 8.0 / 32.0;
    case QuantFormat::Q6_K: return 210.0 * 8.0 / 256.0;
    case QuantFormat::Q4_1: return 20.0 * 8.0 / 32.0;
    case QuantFormat::Q5_1: return 24.0 * 8.0 / 32.0;
    case QuantFormat::Q5_K: return 176.0 * 8.0 / 256.0;
    case QuantFormat::Q2_K: return 84.0 * 8.0 / 256.0;
    case QuantFormat::Q3_K: return 110.0 * 8.0 / 256.0;
    case QuantFormat::Count: break;
  }
  throw Error("analytic_bits_per_weight: unknown format for scheme '" + s.name + "'");
}

size_t linear_weight_bytes(const WeightScheme& s, int64_t rows, int64_t cols) {
  if (s.format == QuantFormat::None) return size_t(rows) * size_t(cols) * dtype_size(s.dtype);
  return quant_storage_bytes(s.format, s.params, rows, cols);
}

// ---- estimate ---------------------------------------------------------------------------------

namespace {

// Bytes of the modules that stay unquantized: the scheme's own dtype for plain schemes, the
// compute dtype for quantized ones.
size_t plain_dtype_size(const WeightScheme& s, DType compute) {
  return dtype_size(s.format == QuantFormat::None ? s.dtype : compute);
}

struct WeightBytes {
  int64_t embeddings = 0, attention = 0, mlp = 0, norms = 0, lm_head = 0;
  int64_t total() const { return embeddings + attention + mlp + norms + lm_head; }
};

WeightBytes weight_bytes_by_component(const ModelConfig& c, const WeightScheme& s, DType compute) {
  const ParamCounts p = count_params(c);
  const int64_t u = int64_t(plain_dtype_size(s, compute));
  WeightBytes w;
  w.embeddings = p.embeddings * u;
  w.lm_head = p.lm_head * u;
  w.norms = p.norms * u;
  w.attention = p.attention_biases * u;
  w.mlp = p.mlp_biases * u;
  for (const auto& l : layer_linears(c)) {
    // Each layer's module is a separate tensor (own scales / block padding).
    const int64_t b = c.num_hidden_layers * int64_t(linear_weight_bytes(s, l.out_features, l.in_features));
    (is_attention(l.name) ? w.attention : w.mlp) += b;
  }
  return w;
}

void check_options(const MemoryOptions& o) {
  if (o.context <= 0) throw Error("--context must be positive (got " + std::to_string(o.context) + ")");
  if (o.batch <= 0) throw Error("--batch must be positive (got " + std::to_string(o.batch) + ")");
  if (o.prefill_chunk <= 0)
    throw Error("--prefill-chunk must be positive (got " + std::to_string(o.prefill_chunk) + ")");
}

bool has_cuda(DeviceKind k) { return k != DeviceKind::Cpu; }

}  // namespace

int64_t weights_bytes(const ModelConfig& c, const WeightScheme& s, DType compute_dtype) {
  return weight_bytes_by_component(c, s, compute_dtype).total();
}

int64_t kv_cache_bytes(const ModelConfig& c, int64_t context, int64_t batch, DType kv_dtype) {
  validate_for_estimate(c);
  return 2 * c.num_hidden_layers * c.num_key_value_heads * c.head_dim * context * batch *
         int64_t(dtype_size(kv_dtype));
}

int64_t activation_scratch_bytes(const ModelConfig& c, int64_t context, int64_t batch, int64_t chunk) {
  validate_for_estimate(c);
  const int64_t rows = batch * std::min(context, chunk);
  return rows * (4 * c.hidden_size + 2 * c.intermediate_size + c.vocab_size) * 4;
}

MemoryEstimate estimate_memory(const ModelConfig& c, const MemoryOptions& o, DeviceKind kind) {
  check_options(o);
  MemoryEstimate e;
  e.params = count_params(c);
  const WeightBytes w = weight_bytes_by_component(c, o.scheme, o.compute_dtype);
  e.weights_bytes = w.total();
  e.kv_cache_bytes = kv_cache_bytes(c, o.context, o.batch, o.kv_dtype);
  const int64_t ctx = has_cuda(kind) ? kCudaContextBytes : 0;
  const int64_t ws = has_cuda(kind) ? kCublasWorkspaceBytes : 0;
  const int64_t act = activation_scratch_bytes(c, o.context, o.batch, o.prefill_chunk);
  e.overhead_bytes = ctx + ws + act;
  e.total_bytes = e.weights_bytes + e.kv_cache_bytes + e.overhead_bytes;
  e.breakdown = {{"embeddings", w.embeddings}, {"attention", w.attention}, {"mlp", w.mlp},
                 {"norms", w.norms},           {"lm_head", w.lm_head},     {"kv_cache", e.kv_cache_bytes},
                 {"cuda_context", ctx},        {"cublas_workspace", ws},   {"activation_scratch", act}};
  return e;
}

int64_t largest_fitting_context(const std::function<int64_t(int64_t)>& total_at, int64_t budget, int64_t limit) {
  if (limit <= 0 || total_at(1) > budget) return 0;
  if (total_at(limit) <= budget) return limit;
  int64_t lo = 1, hi = limit;  // fits at lo, not at hi
  while (hi - lo > 1) {
    const int64_t mid = lo + (hi - lo) / 2;
    (total_at(mid) <= budget ? lo : hi) = mid;
  }
  return lo;
}

int64_t max_context_that_fits(const ModelConfig& c, const MemoryOptions& o, const DeviceSpec& d,
                              int64_t limit) {
  // total(context) is non-decreasing in context (KV grows, scratch saturates at the chunk).
  MemoryOptions t = o;
  return largest_fitting_context(
      [&](int64_t n) {
        t.context = n;
        return estimate_memory(c, t, d.kind).total_bytes;
      },
      d.memory_bytes, limit);
}

QuickEstimate quick_estimate(int64_t params, const WeightScheme& s) {
  if (params <= 0) throw Error("--params must be positive (got " + std::to_string(params) + ")");
  QuickEstimate q;
  q.params = params;
  q.weights_bytes = int64_t(std::llround(double(params) * analytic_bits_per_weight(s) / 8.0));
  double best = 1e300;
  for (const auto& name : preset_names()) {
    ModelConfig pc = *preset_config(name);
    const double d = std::fabs(std::log(double(count_params(pc).total()) / double(params)));
    if (d < best) {
      best = d;
      q.shape_from = name;
      q.shape = pc;
    }
  }
  return q;
}

}  // namespace qforge
