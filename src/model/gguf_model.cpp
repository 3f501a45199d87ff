// model/gguf_model.cpp — GGUF <-> qforge model: llama.cpp metadata keys and tensor names
// (token_embd, blk.N.attn_q, ..., output), the Q/K row permutation of Llama attention weights
// (llama.cpp rotates adjacent pairs; Hugging Face rotates half-heads), per-tensor type choice and
// fallback when a row is not a whole number of blocks, and llama3 rope factors (rope_freqs).
#include "model/gguf_model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

#include "core/thread_pool.h"
#include "io/checkpoint.h"
#include "io/gguf.h"
#include "io/gguf_tokenizer.h"
#include "model/weights.h"
#include "qforge/status.h"

namespace qforge {

namespace fs = std::filesystem;
using io::GgmlType;
using io::GgufFile;
using io::GgufValue;
using nlohmann::json;

bool is_gguf_path(const std::string& p) {
  if (p.size() < 5) return false;
  std::string ext = p.substr(p.size() - 5);
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return ext == ".gguf";
}

namespace {

// llama.cpp's permutation: within each head, row h*hd + 2i + s (GGUF) holds HF row h*hd + s*hd/2 + i.
int64_t hf_row_of_gguf_row(int64_t r, int64_t head_dim) {
  const int64_t h = r / head_dim, j = r % head_dim, i = j / 2, s = j % 2;
  return h * head_dim + s * (head_dim / 2) + i;
}

std::vector<float> llama3_rope_factors(const ModelConfig& c) {
  const auto& rs = c.rope_scaling;
  const int64_t half = c.head_dim / 2;
  const double low_wavelen = double(rs.original_max_position_embeddings) / rs.low_freq_factor;
  const double high_wavelen = double(rs.original_max_position_embeddings) / rs.high_freq_factor;
  std::vector<float> f(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i) {
    const double freq = 1.0 / std::pow(c.rope_theta, double(2 * i) / double(c.head_dim));
    const double wavelen = 2 * M_PI / freq;
    double r;
    if (wavelen < high_wavelen) r = 1.0;
    else if (wavelen > low_wavelen) r = rs.factor;
    else {
      const double smooth = (double(rs.original_max_position_embeddings) / wavelen - rs.low_freq_factor) /
                            (rs.high_freq_factor - rs.low_freq_factor);
      r = 1.0 / ((1 - smooth) / rs.factor + smooth);
    }
    f[size_t(i)] = float(r);
  }
  return f;
}

std::optional<DType> float_dtype(uint32_t t) {
  switch (GgmlType(t)) {
    case GgmlType::F32: return DType::F32;
    case GgmlType::F16: return DType::F16;
    case GgmlType::BF16: return DType::BF16;
    default: return std::nullopt;
  }
}

std::optional<QuantFormat> quant_format_of(uint32_t t) {
  switch (GgmlType(t)) {
    case GgmlType::Q4_0: return QuantFormat::Q4_0;
    case GgmlType::Q8_0: return QuantFormat::Q8_0;
    case GgmlType::Q4_K: return QuantFormat::Q4_K;
    case GgmlType::Q5_0: return QuantFormat::Q5_0;
    case GgmlType::Q6_K: return QuantFormat::Q6_K;
    case GgmlType::Q4_1: return QuantFormat::Q4_1;
    case GgmlType::Q5_1: return QuantFormat::Q5_1;
    case GgmlType::Q5_K: return QuantFormat::Q5_K;
    case GgmlType::Q2_K: return QuantFormat::Q2_K;
    case GgmlType::Q3_K: return QuantFormat::Q3_K;
    default: return std::nullopt;
  }
}

struct Loader {
  const GgufFile& f;
  const ModelConfig& c;
  const LoadOptions& opt;
  DType hold;
  bool permute_qk;

  const io::GgufTensorInfo& require(const std::string& name, std::vector<int64_t> shape) const {
    const auto* t = f.find_tensor(name);
    if (!t) f.fail("missing tensor '" + name + "'");
    if (t->shape() != shape) {
      std::string got, want;
      for (auto d : t->shape()) got += (got.empty() ? "" : ", ") + std::to_string(d);
      for (auto d : shape) want += (want.empty() ? "" : ", ") + std::to_string(d);
      f.fail("tensor '" + name + "' has shape [" + got + "], the metadata implies [" + want + "]");
    }
    if (!float_dtype(t->type) && !quant_format_of(t->type))
      f.fail("tensor '" + name + "' has ggml type " + io::ggml_type_name(t->type) +
             ", which qforge does not implement (F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K)");
    return *t;
  }

  // Raw bytes of a [rows, row_bytes] tensor, rows un-permuted when `heads_dim` > 0.
  Tensor raw_rows(const io::GgufTensorInfo& t, DType dt, int64_t rows, int64_t cols, int64_t head_dim) const {
    const size_t row_bytes = t.nbytes / size_t(rows);
    Tensor out = dt == DType::U8 ? Tensor::empty(DType::U8, {rows, int64_t(row_bytes)}, MemCategory::Weights)
                                 : Tensor::empty(dt, {rows, cols}, MemCategory::Weights);
    auto* dst = static_cast<uint8_t*>(out.raw());
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t hr = head_dim > 0 ? hf_row_of_gguf_row(r, head_dim) : r;
      std::memcpy(dst + size_t(hr) * row_bytes, t.data + size_t(r) * row_bytes, row_bytes);
    }
    return out;
  }

  Tensor float_1d(const std::string& name, int64_t n) const {
    const auto& t = require(name, {n});
    auto dt = float_dtype(t.type);
    if (!dt) f.fail("tensor '" + name + "' must be F32/F16/BF16 (got " + io::ggml_type_name(t.type) + ")");
    return Tensor::view(*dt, {n}, t.data, nullptr).to(DType::F32, MemCategory::Weights);
  }

  void linear(Linear& l, const std::string& gguf, const std::string& hf, int64_t out, int64_t in, bool bias,
              int64_t head_dim) const {
    l.name = hf;
    l.in = in;
    l.out = out;
    const auto& t = require(gguf + ".weight", {out, in});
    const int64_t hd = permute_qk ? head_dim : 0;
    if (auto qf = quant_format_of(t.type)) {
      if (opt.quant != QuantFormat::None)
        f.fail("tensor '" + gguf + ".weight' is already " + io::ggml_type_name(t.type) + "; drop --quant");
      l.qweight.format = *qf;
      l.qweight.params.blocksize = int(io::ggml_type_info(t.type)->block);
      l.qweight.rows = out;
      l.qweight.cols = in;
      l.qweight.data = raw_rows(t, DType::U8, out, in, hd);
    } else {
      Tensor w = raw_rows(t, *float_dtype(t.type), out, in, hd);
      const bool quantize = opt.quant != QuantFormat::None &&
                            std::none_of(opt.skip_modules.begin(), opt.skip_modules.end(), [&](const std::string& s) {
                              return !s.empty() && hf.find(s) != std::string::npos;
                            });
      if (quantize) l.qweight = quantize_weight(w, opt.quant, opt.quant_params);
      else l.weight = w.dtype() == hold ? w : w.to(hold, MemCategory::Weights);
    }
    if (bias) {
      Tensor b = float_1d(gguf + ".bias", out);
      if (hd > 0) {
        Tensor p = Tensor::empty(DType::F32, {out}, MemCategory::Weights);
        for (int64_t r = 0; r < out; ++r) p.data<float>()[hf_row_of_gguf_row(r, hd)] = b.data<float>()[r];
        b = p;
      }
      l.bias = b;
    }
  }
};

std::string arch_prefix(const GgufFile& f) { return f.require_string("general.architecture"); }

}  // namespace

ModelConfig gguf_model_config(const GgufFile& f) {
  const std::string arch = arch_prefix(f);
  if (arch != "llama" && arch != "qwen2")
    f.fail("general.architecture '" + arch + "' is not supported (llama, qwen2)");
  const std::string p = arch + ".";
  json j;
  j["architectures"] = {arch == "qwen2" ? "Qwen2ForCausalLM" : "LlamaForCausalLM"};
  j["model_type"] = arch;
  const int64_t hidden = f.require_int(p + "embedding_length");
  const int64_t heads = f.require_int(p + "attention.head_count");
  j["hidden_size"] = hidden;
  j["intermediate_size"] = f.require_int(p + "feed_forward_length");
  j["num_hidden_layers"] = f.require_int(p + "block_count");
  j["num_attention_heads"] = heads;
  j["num_key_value_heads"] = f.get_int(p + "attention.head_count_kv").value_or(heads);
  if (heads <= 0) f.fail("metadata '" + p + "attention.head_count' must be positive");
  if (auto kl = f.get_int(p + "attention.key_length")) j["head_dim"] = *kl;
  else j["head_dim"] = hidden / heads;
  if (auto vl = f.get_int(p + "attention.value_length"); vl && *vl != j["head_dim"].get<int64_t>())
    f.fail("attention.value_length differs from attention.key_length (not a Llama-family model)");
  j["max_position_embeddings"] = f.get_int(p + "context_length").value_or(2048);
  j["rms_norm_eps"] = f.get_float(p + "attention.layer_norm_rms_epsilon").value_or(1e-5);
  j["rope_theta"] = f.get_float(p + "rope.freq_base").value_or(10000.0);
  if (auto rd = f.get_int(p + "rope.dimension_count"); rd && *rd != j["head_dim"].get<int64_t>())
    f.fail("rope.dimension_count " + std::to_string(*rd) + " differs from the head size (partial rotary is not supported)");
  int64_t vocab = 0;
  if (auto v = f.get_int(p + "vocab_size")) vocab = *v;
  else if (const GgufValue* t = f.find("tokenizer.ggml.tokens"); t && t->type == io::GgufType::Array)
    vocab = int64_t(t->strs.size());
  else if (const auto* te = f.find_tensor("token_embd.weight"); te && te->ne.size() == 2)
    vocab = te->ne[1];
  j["vocab_size"] = vocab;
  if (auto st = f.get_string(p + "rope.scaling.type"); st && *st != "none") {
    if (*st != "linear") f.fail("rope scaling '" + *st + "' is not supported (linear; llama3 through rope_freqs)");
    j["rope_scaling"] = {{"type", "linear"}, {"factor", f.get_float(p + "rope.scaling.factor").value_or(1.0)}};
  }
  j["tie_word_embeddings"] = f.find_tensor("output.weight") == nullptr;
  if (arch == "llama") {
    j["attention_bias"] = f.find_tensor("blk.0.attn_q.bias") != nullptr;
    j["mlp_bias"] = f.find_tensor("blk.0.ffn_gate.bias") != nullptr;
  }
  if (auto b = f.get_int("tokenizer.ggml.bos_token_id")) j["bos_token_id"] = *b;
  json eos = json::array();
  for (const char* k : {"tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id"})
    if (auto e = f.get_int(k); e && std::find(eos.begin(), eos.end(), json(*e)) == eos.end()) eos.push_back(*e);
  if (!eos.empty()) j["eos_token_id"] = eos;
  ModelConfig c = parse_model_config(j.dump(), f.name());
  c.torch_dtype.reset();
  if (const auto* rf = f.find_tensor("rope_freqs.weight")) {
    // llama3 rope: llama.cpp stores only the per-frequency factors; recover the parameters by
    // matching the table of the standard llama3 settings (low 1, high 4, original context 8192).
    if (rf->type != uint32_t(GgmlType::F32) || rf->ne.size() != 1 || rf->ne[0] != c.head_dim / 2)
      f.fail("tensor 'rope_freqs.weight' must be F32 [" + std::to_string(c.head_dim / 2) + "]");
    std::vector<float> got(size_t(rf->ne[0]));
    std::memcpy(got.data(), rf->data, got.size() * 4);
    ModelConfig t = c;
    t.rope_scaling = {RopeType::Llama3, double(got.back()), 1.0, 4.0, 8192};
    auto want = llama3_rope_factors(t);
    for (size_t i = 0; i < got.size(); ++i)
      if (std::fabs(got[i] - want[i]) > 1e-4f * std::max(1.0f, want[i]))
        f.fail("rope_freqs.weight does not match llama3 scaling with low_freq_factor 1, high_freq_factor 4, "
               "original context 8192 (other rope factor tables are not supported)");
    c.rope_scaling = t.rope_scaling;
  }
  return c;
}

GgufLoaded load_gguf_model(const fs::path& path, const LoadOptions& opt) {
  const GgufFile f = GgufFile::open(path);
  GgufLoaded out;
  out.cfg = gguf_model_config(f);
  const ModelConfig& c = out.cfg;
  const auto* q0 = f.find_tensor("blk.0.attn_q.weight");
  const auto* emb = f.find_tensor("token_embd.weight");
  if (!emb) f.fail("missing tensor 'token_embd.weight'");
  std::optional<DType> file_float = q0 ? float_dtype(q0->type) : std::nullopt;
  DType hold = opt.dtype.value_or(file_float.value_or(DType::F32));
  if (opt.quant != QuantFormat::None && opt.compute_dtype) hold = *opt.compute_dtype;
  if (hold != DType::F32 && hold != DType::F16 && hold != DType::BF16)
    throw Error("--dtype must be f32, f16 or bf16 (got " + std::string(dtype_name(hold)) + ")");
  out.hold = hold;
  const Loader L{f, c, opt, hold, arch_prefix(f) == "llama"};
  auto w = std::make_unique<ModelWeights>();
  w->layers.resize(size_t(c.num_hidden_layers));
  const auto& te = L.require("token_embd.weight", {c.vocab_size, c.hidden_size});
  if (auto dt = float_dtype(te.type)) {
    Tensor e = L.raw_rows(te, *dt, c.vocab_size, c.hidden_size, 0);
    w->embed = *dt == hold ? e : e.to(hold, MemCategory::Weights);
  } else {
    QuantWeight q;
    q.format = *quant_format_of(te.type);
    q.params.blocksize = int(io::ggml_type_info(te.type)->block);
    q.rows = c.vocab_size;
    q.cols = c.hidden_size;
    q.data = L.raw_rows(te, DType::U8, c.vocab_size, c.hidden_size, 0);
    Tensor e = Tensor::empty(DType::F32, {c.vocab_size, c.hidden_size}, MemCategory::Weights);
    ThreadPool::global().parallel_for(c.vocab_size, 256, [&](int64_t a, int64_t b) {
      dequantize_rows(q, a, b - a, e.data<float>() + a * c.hidden_size);
    });
    w->embed = hold == DType::F32 ? e : e.to(hold, MemCategory::Weights);
    if (c.tie_word_embeddings) w->lm_head.qweight = std::move(q);  // llama.cpp multiplies by these blocks too
  }
  w->final_norm = L.float_1d("output_norm.weight", c.hidden_size);
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    auto& l = w->layers[size_t(i)];
    const std::string g = "blk." + std::to_string(i) + ".", h = "model.layers." + std::to_string(i) + ".";
    l.attn_norm = L.float_1d(g + "attn_norm.weight", c.hidden_size);
    l.ffn_norm = L.float_1d(g + "ffn_norm.weight", c.hidden_size);
    L.linear(l.q, g + "attn_q", h + "self_attn.q_proj", c.q_dim(), c.hidden_size, c.attention_bias, c.head_dim);
    L.linear(l.k, g + "attn_k", h + "self_attn.k_proj", c.kv_dim(), c.hidden_size, c.attention_bias, c.head_dim);
    L.linear(l.v, g + "attn_v", h + "self_attn.v_proj", c.kv_dim(), c.hidden_size, c.attention_bias, 0);
    L.linear(l.o, g + "attn_output", h + "self_attn.o_proj", c.hidden_size, c.q_dim(), c.o_proj_bias, 0);
    L.linear(l.gate, g + "ffn_gate", h + "mlp.gate_proj", c.intermediate_size, c.hidden_size, c.mlp_bias, 0);
    L.linear(l.up, g + "ffn_up", h + "mlp.up_proj", c.intermediate_size, c.hidden_size, c.mlp_bias, 0);
    L.linear(l.down, g + "ffn_down", h + "mlp.down_proj", c.hidden_size, c.intermediate_size, c.mlp_bias, 0);
  }
  Linear& head = w->lm_head;
  head.name = "lm_head";
  head.in = c.hidden_size;
  head.out = c.vocab_size;
  if (!c.tie_word_embeddings) {
    L.linear(head, "output", "lm_head", c.vocab_size, c.hidden_size, false, 0);
  } else if (!head.quantized()) {
    const bool q = opt.quant != QuantFormat::None &&
                   std::none_of(opt.skip_modules.begin(), opt.skip_modules.end(),
                                [](const std::string& s) { return !s.empty() && std::string("lm_head").find(s) != std::string::npos; });
    if (q) head.qweight = quantize_weight(w->embed, opt.quant, opt.quant_params);
    else head.weight = w->embed;
  }
  out.weights = std::move(w);
  return out;
}

std::unique_ptr<Tokenizer> load_gguf_tokenizer(const fs::path& path) {
  const GgufFile f = GgufFile::open(path);
  if (auto m = f.get_string("tokenizer.ggml.model"); !m || *m == "no_vocab" || *m == "none")
    f.fail("has no tokenizer (tokenizer.ggml.model is " + (m ? "'" + *m + "'" : std::string("missing")) +
           "); pass token ids or use a GGUF with a vocabulary");
  auto s = io::tokenizer_from_gguf(f);
  return Tokenizer::load_from_json(s.tokenizer_json, s.tokenizer_config_json, path.string());
}

// ---------------------------------------------------------------------------------------------- writing

namespace {

struct Target {
  GgmlType type;
  std::optional<QuantFormat> quant;
  int64_t block;
};

// The writer's view of a ggml type: float, or the QuantFormat that makes its blocks (the reader's mapping) and
// that format's block length.
Target target_of(GgmlType t) {
  if (float_dtype(uint32_t(t))) return {t, std::nullopt, 1};
  const auto q = quant_format_of(uint32_t(t));
  if (!q) throw Error("gguf writer: no target for ggml type " + std::to_string(int(t)));
  return {t, *q, quant_traits(*q).default_block};
}

constexpr const char* kWritableFormats =
    "f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q2_k, q3_k, q4_k, q5_k, q6_k, q4_k_m, q5_k_m";

// The type every 2-D weight starts from (q4_k_m / q5_k_m: Q4_K / Q5_K, before the mix of kquant_mix_type).
GgmlType base_type_of(const std::string& fmt) {
  if (fmt == "f32") return GgmlType::F32;
  if (fmt == "f16") return GgmlType::F16;
  if (fmt == "bf16") return GgmlType::BF16;
  if (fmt == "q8_0") return GgmlType::Q8_0;
  if (fmt == "q4_0") return GgmlType::Q4_0;
  if (fmt == "q5_0") return GgmlType::Q5_0;
  if (fmt == "q4_1") return GgmlType::Q4_1;
  if (fmt == "q5_1") return GgmlType::Q5_1;
  if (fmt == "q2_k") return GgmlType::Q2_K;
  if (fmt == "q3_k") return GgmlType::Q3_K;
  if (fmt == "q4_k" || fmt == "q4_k_m") return GgmlType::Q4_K;
  if (fmt == "q5_k" || fmt == "q5_k_m") return GgmlType::Q5_K;
  if (fmt == "q6_k") return GgmlType::Q6_K;
  throw Error("--format: '" + fmt + "' cannot be written as GGUF (" + kWritableFormats + ")");
}

uint32_t file_type_of(const std::string& fmt) {  // llama_ftype
  if (fmt == "f32") return 0;
  if (fmt == "f16") return 1;
  if (fmt == "q4_0") return 2;
  if (fmt == "q4_1") return 3;
  if (fmt == "q8_0") return 7;
  if (fmt == "q5_0") return 8;
  if (fmt == "q5_1") return 9;
  if (fmt == "q2_k") return 10;    // MOSTLY_Q2_K (pure)
  if (fmt == "q3_k") return 11;    // MOSTLY_Q3_K_S (pure)
  if (fmt == "q4_k") return 14;    // MOSTLY_Q4_K_S: every weight Q4_K
  if (fmt == "q4_k_m") return 15;  // MOSTLY_Q4_K_M
  if (fmt == "q5_k") return 16;    // MOSTLY_Q5_K_S: every weight Q5_K
  if (fmt == "q5_k_m") return 17;  // MOSTLY_Q5_K_M
  if (fmt == "q6_k") return 18;
  return 32;                       // bf16
}

// llama.cpp's tensor_type_fallback: a row that is not a whole number of blocks takes Q5_0 instead of Q4_K,
// Q5_1 instead of Q5_K, Q8_0 instead of Q6_K, Q4_0 instead of Q2_K / Q3_K, and F16 when even that does not
// fit (or for a 32-block type).
GgmlType fallback_for(GgmlType t, int64_t cols) {
  const Target want = target_of(t);
  if (cols % want.block == 0) return t;
  const GgmlType f = t == GgmlType::Q4_K   ? GgmlType::Q5_0
                     : t == GgmlType::Q5_K ? GgmlType::Q5_1
                     : t == GgmlType::Q6_K ? GgmlType::Q8_0
                     : t == GgmlType::Q2_K || t == GgmlType::Q3_K ? GgmlType::Q4_0
                                           : GgmlType::F16;
  return cols % target_of(f).block == 0 ? f : GgmlType::F16;
}

// llama.cpp's Q4_K_M / Q5_K_M mix for a dense llama-family model (llama_tensor_get_type): Q6_K for the
// output matrix (the token embedding when tied; Q8_0 when its rows are not whole super-blocks) and for attn_v
// and ffn_down of the use_more_bits layers (the first and last eighth, and every third layer between); the
// base type (Q4_K / Q5_K) for every other weight. `layer` is -1 outside the blocks.
GgmlType kquant_mix_type(const std::string& role, int64_t layer, int64_t n_layers, int64_t cols, bool tied,
                         GgmlType base) {
  auto use_more_bits = [&](int64_t i) {
    return i < n_layers / 8 || i >= 7 * n_layers / 8 || (i - n_layers / 8) % 3 == 2;
  };
  if (role == "output" || (tied && role == "token_embd")) return cols % 256 != 0 ? GgmlType::Q8_0 : GgmlType::Q6_K;
  if ((role == "attn_v" || role == "ffn_down") && use_more_bits(layer)) return GgmlType::Q6_K;
  return base;
}

// A float tensor source: returns the HF tensor `name` as f32 [numel].
using Source = std::function<std::vector<float>(const std::string& hf_name, int64_t numel)>;

void set_model_metadata(io::GgufWriter& W, const ModelConfig& c, const std::string& name, const std::string& fmt) {
  const std::string arch = c.model_type == "qwen2" ? "qwen2" : "llama";
  const std::string p = arch + ".";
  W.set("general.architecture", GgufValue::str(arch));
  W.set("general.name", GgufValue::str(name));
  W.set("general.alignment", GgufValue::u32(32));
  W.set("general.file_type", GgufValue::u32(file_type_of(fmt)));
  W.set("general.quantization_version", GgufValue::u32(2));
  W.set(p + "vocab_size", GgufValue::u32(uint32_t(c.vocab_size)));
  W.set(p + "context_length", GgufValue::u32(uint32_t(c.max_position_embeddings)));
  W.set(p + "embedding_length", GgufValue::u32(uint32_t(c.hidden_size)));
  W.set(p + "block_count", GgufValue::u32(uint32_t(c.num_hidden_layers)));
  W.set(p + "feed_forward_length", GgufValue::u32(uint32_t(c.intermediate_size)));
  W.set(p + "attention.head_count", GgufValue::u32(uint32_t(c.num_attention_heads)));
  W.set(p + "attention.head_count_kv", GgufValue::u32(uint32_t(c.num_key_value_heads)));
  W.set(p + "attention.key_length", GgufValue::u32(uint32_t(c.head_dim)));
  W.set(p + "attention.value_length", GgufValue::u32(uint32_t(c.head_dim)));
  W.set(p + "rope.dimension_count", GgufValue::u32(uint32_t(c.head_dim)));
  W.set(p + "rope.freq_base", GgufValue::f32(float(c.rope_theta)));
  W.set(p + "attention.layer_norm_rms_epsilon", GgufValue::f32(float(c.rms_norm_eps)));
  if (c.rope_scaling.type == RopeType::Linear) {
    W.set(p + "rope.scaling.type", GgufValue::str("linear"));
    W.set(p + "rope.scaling.factor", GgufValue::f32(float(c.rope_scaling.factor)));
  } else if (c.rope_scaling.type != RopeType::Default && c.rope_scaling.type != RopeType::Llama3) {
    throw Error("GGUF export: this rope scaling type is not supported");
  }
}

GgufWriteSummary write_model(const ModelConfig& c, const Source& src, const std::string& name,
                             const std::vector<std::pair<std::string, GgufValue>>& tokenizer_kv,
                             const fs::path& out, const GgufWriteOptions& opt) {
  if (fs::exists(out) && !opt.force) throw Error(out.string() + ": already exists (use --force to replace it)");
  if (c.sliding_window) throw Error("GGUF export: sliding-window attention is not supported by this writer");
  const GgmlType base = base_type_of(opt.format);
  const bool mix = opt.format == "q4_k_m" || opt.format == "q5_k_m";
  if (opt.format == "q4_k_m" && c.num_hidden_layers == 80 && c.num_key_value_heads != c.num_attention_heads)
    throw Error("GGUF q4_k_m: llama.cpp gives a 70B model's attn_v Q5_K, which qforge does not implement");
  io::GgufWriter W;
  set_model_metadata(W, c, name, opt.format);
  for (const auto& [k, v] : tokenizer_kv) W.set(k, v);
  GgufWriteSummary s;
  s.file_type = mix ? (opt.format == "q4_k_m" ? "Q4_K_M" : "Q5_K_M") : std::string(io::ggml_type_info(uint32_t(base))->name);
  const bool llama = c.model_type != "qwen2";
  // Each 2-D weight: the requested type (q4_k_m: its mix), then llama.cpp's fallback when a row is not a
  // whole number of blocks (the demo model's 288 columns).
  auto type_for = [&](const std::string& gguf, int64_t cols) -> Target {
    GgmlType want = base;
    if (mix) {
      const bool blk = gguf.rfind("blk.", 0) == 0;
      const size_t dot1 = gguf.find('.'), dot2 = gguf.find('.', dot1 + 1);
      const int64_t layer = blk ? std::stoll(gguf.substr(dot1 + 1, dot2 - dot1 - 1)) : -1;
      const std::string role = blk ? gguf.substr(dot2 + 1, gguf.rfind('.') - dot2 - 1) : gguf.substr(0, dot1);
      want = kquant_mix_type(role, layer, c.num_hidden_layers, cols, c.tie_word_embeddings, base);
    }
    const GgmlType got = fallback_for(want, cols);
    if (got != want) {
      ++s.fallback;
      const std::string t(io::ggml_type_info(uint32_t(got))->name);
      if (("," + s.fallback_type + ",").find("," + t + ",") == std::string::npos)
        s.fallback_type += (s.fallback_type.empty() ? "" : ",") + t;
    } else if (got == base) {
      ++s.quantized;
    }
    ++s.by_type[std::string(io::ggml_type_info(uint32_t(got))->name)];
    return target_of(got);
  };
  auto add_1d = [&](const std::string& gguf, const std::string& hf, int64_t n) {
    W.add_tensor(gguf, GgmlType::F32, {n}, [=, &src](uint8_t* o, size_t nb) {
      auto v = src(hf, n);
      std::memcpy(o, v.data(), nb);
    });
    ++s.tensors;
  };
  auto add_2d = [&](const std::string& gguf, const std::string& hf, int64_t rows, int64_t cols, int64_t head_dim) {
    const Target t = type_for(gguf, cols);
    ++s.tensors;
    W.add_tensor(gguf, t.type, {cols, rows}, [=, &src](uint8_t* o, size_t nb) {
      auto v = src(hf, rows * cols);
      if (head_dim > 0) {  // HF row order -> llama.cpp's interleaved order
        std::vector<float> p(v.size());
        for (int64_t r = 0; r < rows; ++r)
          std::memcpy(&p[size_t(r * cols)], &v[size_t(hf_row_of_gguf_row(r, head_dim) * cols)], size_t(cols) * 4);
        v.swap(p);
      }
      if (t.quant) {
        Tensor x = Tensor::view(DType::F32, {rows, cols}, v.data(), nullptr);
        QuantWeight q = quantize_weight(x, *t.quant, {});
        QF_CHECK(q.data.nbytes() == nb, "gguf writer: quantized size mismatch");
        std::memcpy(o, q.data.raw(), nb);
      } else {
        const DType dt = t.type == GgmlType::F32 ? DType::F32 : t.type == GgmlType::BF16 ? DType::BF16 : DType::F16;
        convert_floats(v.data(), DType::F32, o, dt, v.size());
      }
    });
  };
  add_2d("token_embd.weight", "model.embed_tokens.weight", c.vocab_size, c.hidden_size, 0);
  add_1d("output_norm.weight", "model.norm.weight", c.hidden_size);
  if (!c.tie_word_embeddings) add_2d("output.weight", "lm_head.weight", c.vocab_size, c.hidden_size, 0);
  if (c.rope_scaling.type == RopeType::Llama3) {
    auto ff = llama3_rope_factors(c);
    W.add_tensor("rope_freqs.weight", GgmlType::F32, {int64_t(ff.size())},
                 [ff](uint8_t* o, size_t nb) { std::memcpy(o, ff.data(), nb); });
    ++s.tensors;
  }
  const int64_t hd = llama ? c.head_dim : 0;
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const std::string g = "blk." + std::to_string(i) + ".", h = "model.layers." + std::to_string(i) + ".";
    add_1d(g + "attn_norm.weight", h + "input_layernorm.weight", c.hidden_size);
    add_1d(g + "ffn_norm.weight", h + "post_attention_layernorm.weight", c.hidden_size);
    struct L { const char* g; const char* h; int64_t rows, cols, perm; bool bias; };
    const L ls[] = {{"attn_q", "self_attn.q_proj", c.q_dim(), c.hidden_size, hd, c.attention_bias},
                    {"attn_k", "self_attn.k_proj", c.kv_dim(), c.hidden_size, hd, c.attention_bias},
                    {"attn_v", "self_attn.v_proj", c.kv_dim(), c.hidden_size, 0, c.attention_bias},
                    {"attn_output", "self_attn.o_proj", c.hidden_size, c.q_dim(), 0, c.o_proj_bias},
                    {"ffn_gate", "mlp.gate_proj", c.intermediate_size, c.hidden_size, 0, c.mlp_bias},
                    {"ffn_up", "mlp.up_proj", c.intermediate_size, c.hidden_size, 0, c.mlp_bias},
                    {"ffn_down", "mlp.down_proj", c.hidden_size, c.intermediate_size, 0, c.mlp_bias}};
    for (const auto& l : ls) {
      add_2d(g + l.g + ".weight", h + l.h + ".weight", l.rows, l.cols, l.perm);
      if (l.bias) {
        const std::string hf = h + l.h + ".bias";
        const int64_t rows = l.rows, perm = l.perm;
        W.add_tensor(g + l.g + ".bias", GgmlType::F32, {rows}, [=, &src](uint8_t* o, size_t) {
          auto v = src(hf, rows);
          auto* dst = reinterpret_cast<float*>(o);
          for (int64_t r = 0; r < rows; ++r) dst[r] = v[size_t(perm > 0 ? hf_row_of_gguf_row(r, perm) : r)];
        });
        ++s.tensors;
      }
    }
  }
  s.bytes = W.tensor_bytes();
  W.write(out);
  return s;
}

}  // namespace

GgufWriteSummary write_gguf_from_checkpoint(const std::string& model, const fs::path& out, const GgufWriteOptions& opt) {
  const fs::path dir = io::resolve_model_dir(model);
  const ModelConfig c = load_model_config(dir / "config.json");
  if (c.quantization_config_json.size()) throw Error(dir.string() + ": the checkpoint is already quantized; export its float original");
  const auto ck = io::Checkpoint::open(dir);
  auto kv = io::tokenizer_to_gguf(dir);
  Source src = [&](const std::string& name, int64_t numel) {
    std::string n = name;
    if (n == "lm_head.weight" && !ck.find(n)) n = "model.embed_tokens.weight";
    Tensor t = ck.tensor(ck.require(n).name);
    if (t.numel() != numel)
      throw Error(dir.string() + ": tensor '" + n + "' has " + std::to_string(t.numel()) + " elements, config.json implies " +
                  std::to_string(numel));
    if (t.dtype() != DType::F32 && t.dtype() != DType::F16 && t.dtype() != DType::BF16)
      throw Error(dir.string() + ": tensor '" + n + "' has dtype " + std::string(dtype_name(t.dtype())) + " (expected a float)");
    std::vector<float> v(static_cast<size_t>(numel));
    convert_floats(t.raw(), t.dtype(), v.data(), DType::F32, v.size());
    return v;
  };
  return write_model(c, src, dir.filename().string(), kv, out, opt);
}

GgufWriteSummary write_gguf_random(const fs::path& config_json, const fs::path& out, const GgufWriteOptions& opt) {
  const ModelConfig c = load_model_config(config_json);
  std::vector<std::pair<std::string, GgufValue>> kv{{"tokenizer.ggml.model", GgufValue::str("no_vocab")}};
  const uint64_t seed = opt.random_seed;
  Source src = [seed](const std::string& name, int64_t numel) {
    std::vector<float> v(static_cast<size_t>(numel));
    if (name.find("norm") != std::string::npos) {
      std::fill(v.begin(), v.end(), 1.0f);
      return v;
    }
    uint64_t base = seed * 0x9E3779B97F4A7C15ull ^ std::hash<std::string>{}(name);
    ThreadPool::global().parallel_for(numel, 1 << 16, [&](int64_t a, int64_t b) {
      for (int64_t i = a; i < b; ++i) {
        uint64_t z = base + uint64_t(i) * 0x9E3779B97F4A7C15ull;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        const float u = float((z & 0xffff) + ((z >> 16) & 0xffff) + ((z >> 32) & 0xffff) + (z >> 48)) / 65536.0f;
        v[size_t(i)] = (u - 2.0f) * 1.7320508f * 0.02f;
      }
    });
    return v;
  };
  return write_model(c, src, config_json.stem().string() + "-random", kv, out, opt);
}

}  // namespace qforge
