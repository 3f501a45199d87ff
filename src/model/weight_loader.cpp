// model/weight_loader.cpp — maps Hugging Face tensor names to weight slots, checks every shape
// against the config, converts to the held dtype, quantizes linear layers when asked (one tensor
// at a time: streaming), and builds random-weight models for benchmarks.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "backends/backend.h"
#include "core/thread_pool.h"
#include "io/checkpoint.h"
#include "io/mapped_file.h"
#include "model/weights.h"
#include "qforge/model.h"
#include "qforge/status.h"
#include "quant/quant_checkpoint.h"

namespace qforge {

size_t ModelWeights::total_bytes() const {
  size_t n = embed.nbytes() + final_norm.nbytes();
  if (lm_head.weight.raw() != embed.raw() || lm_head.quantized()) n += lm_head.weight_bytes();
  for (const auto& l : layers) {
    n += l.attn_norm.nbytes() + l.ffn_norm.nbytes();
    for (const Linear* p : {&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down}) n += p->weight_bytes() + p->bias.nbytes();
  }
  return n;
}

namespace {

struct LinearSpec {
  Linear* slot;
  std::string name;
  int64_t out, in;
  bool bias;
};

std::vector<LinearSpec> linear_specs(ModelWeights& w, const ModelConfig& c) {
  std::vector<LinearSpec> v;
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    auto& l = w.layers[size_t(i)];
    std::string p = "model.layers." + std::to_string(i) + ".";
    v.push_back({&l.q, p + "self_attn.q_proj", c.q_dim(), c.hidden_size, c.attention_bias});
    v.push_back({&l.k, p + "self_attn.k_proj", c.kv_dim(), c.hidden_size, c.attention_bias});
    v.push_back({&l.v, p + "self_attn.v_proj", c.kv_dim(), c.hidden_size, c.attention_bias});
    v.push_back({&l.o, p + "self_attn.o_proj", c.hidden_size, c.q_dim(), c.o_proj_bias});
    v.push_back({&l.gate, p + "mlp.gate_proj", c.intermediate_size, c.hidden_size, c.mlp_bias});
    v.push_back({&l.up, p + "mlp.up_proj", c.intermediate_size, c.hidden_size, c.mlp_bias});
    v.push_back({&l.down, p + "mlp.down_proj", c.hidden_size, c.intermediate_size, c.mlp_bias});
  }
  return v;
}

bool skipped(const std::string& name, const LoadOptions& opt) {
  return std::any_of(opt.skip_modules.begin(), opt.skip_modules.end(),
                     [&](const std::string& s) { return !s.empty() && name.find(s) != std::string::npos; });
}

Tensor checked(const io::Checkpoint& ck, const std::string& name, std::vector<int64_t> shape) {
  const auto& info = ck.require(name);
  if (info.shape != shape) {
    Tensor dummy = Tensor::view(info.dtype, shape, nullptr, nullptr);
    Tensor got = Tensor::view(info.dtype, info.shape, nullptr, nullptr);
    throw Error(info.file + ": tensor '" + name + "' has shape " + got.shape_str() + ", config.json implies " +
                dummy.shape_str());
  }
  if (info.dtype != DType::F32 && info.dtype != DType::F16 && info.dtype != DType::BF16)
    throw Error(info.file + ": tensor '" + name + "' has dtype " + std::string(dtype_name(info.dtype)) +
                " (expected F32, F16 or BF16)");
  return ck.tensor(name);
}

Tensor load_as(const io::Checkpoint& ck, const std::string& name, std::vector<int64_t> shape, DType dt) {
  Tensor src = checked(ck, name, std::move(shape));
  Tensor out = src.to(dt, MemCategory::Weights);
  io::release_mapped_pages(src.raw(), src.nbytes());
  return out;
}

void fill_linear(Linear& l, Tensor w, const LoadOptions& opt, DType hold, bool quantize) {
  if (quantize) {
    l.qweight = quantize_weight(w, opt.quant, opt.quant_params);
  } else {
    // Always an owned, accounted copy (the mapping's pages are released right after).
    l.weight = w.to(hold, MemCategory::Weights);
  }
}

}  // namespace

DType resolve_hold_dtype(const ModelConfig& cfg, const LoadOptions& opt) {
  DType d = opt.dtype.value_or(cfg.torch_dtype.value_or(DType::F32));
  if (opt.quant != QuantFormat::None && opt.compute_dtype) d = *opt.compute_dtype;
  if (d != DType::F32 && d != DType::F16 && d != DType::BF16)
    throw Error("--dtype must be f32, f16 or bf16 (got " + std::string(dtype_name(d)) + ")");
  return d;
}

std::unique_ptr<ModelWeights> load_weights(const io::Checkpoint& ck, const ModelConfig& c, const LoadOptions& opt,
                                           DType hold) {
  auto w = std::make_unique<ModelWeights>();
  w->layers.resize(size_t(c.num_hidden_layers));
  w->embed = load_as(ck, "model.embed_tokens.weight", {c.vocab_size, c.hidden_size}, hold);
  w->final_norm = load_as(ck, "model.norm.weight", {c.hidden_size}, DType::F32);
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    std::string p = "model.layers." + std::to_string(i) + ".";
    w->layers[size_t(i)].attn_norm = load_as(ck, p + "input_layernorm.weight", {c.hidden_size}, DType::F32);
    w->layers[size_t(i)].ffn_norm = load_as(ck, p + "post_attention_layernorm.weight", {c.hidden_size}, DType::F32);
  }
  const bool quant = opt.quant != QuantFormat::None;
  const auto stored_format = prequantized_format(c);
  if (stored_format && quant)
    throw Error(ck.dir().string() + ": the checkpoint is already quantized; drop --quant");
  for (auto& s : linear_specs(*w, c)) {
    Linear& l = *s.slot;
    l.name = s.name;
    l.in = s.in;
    l.out = s.out;
    if (s.bias) l.bias = load_as(ck, s.name + ".bias", {s.out}, DType::F32);
    if (stored_format) {
      if (auto q = load_prequantized_linear(ck, c, s.name, s.out, s.in)) {
        l.qweight = std::move(*q);
        continue;
      }
    }
    Tensor src = checked(ck, s.name + ".weight", {s.out, s.in});
    fill_linear(l, src, opt, hold, quant && !skipped(s.name, opt));
    io::release_mapped_pages(src.raw(), src.nbytes());
  }
  Linear& head = w->lm_head;
  head.name = "lm_head";
  head.in = c.hidden_size;
  head.out = c.vocab_size;
  const bool has_head = ck.find("lm_head.weight") != nullptr;
  if (!c.tie_word_embeddings && !has_head)
    throw Error(ck.dir().string() + ": missing tensor 'lm_head.weight' (config.json says the embeddings are not tied)");
  if (c.tie_word_embeddings || !has_head) {
    if (quant && !skipped("lm_head", opt)) head.qweight = quantize_weight(w->embed, opt.quant, opt.quant_params);
    else head.weight = w->embed;
  } else {
    Tensor src = checked(ck, "lm_head.weight", {c.vocab_size, c.hidden_size});
    fill_linear(head, src, opt, hold, quant && !skipped("lm_head", opt));
    io::release_mapped_pages(src.raw(), src.nbytes());
  }
  return w;
}

std::unique_ptr<ModelWeights> random_weights(const ModelConfig& c, const LoadOptions& opt, DType hold, uint64_t seed) {
  auto w = std::make_unique<ModelWeights>();
  w->layers.resize(size_t(c.num_hidden_layers));
  uint64_t counter = seed * 0x9E3779B97F4A7C15ull;
  // Approximately Normal(0, 0.02): Irwin-Hall sum of four 16-bit uniforms from a counter-based
  // hash (splitmix64) of the element index, so filling is parallel, fast and reproducible.
  auto randn = [&](std::vector<int64_t> shape, DType dt) {
    Tensor f = Tensor::empty(dt, std::move(shape), MemCategory::Weights);
    uint64_t base = (counter += 0x9E3779B97F4A7C15ull);
    int64_t n = f.numel();
    ThreadPool::global().parallel_for(n, 1 << 16, [&](int64_t a, int64_t b) {
      std::vector<float> tmp(size_t(b - a));
      for (int64_t i = a; i < b; ++i) {
        uint64_t z = base + uint64_t(i) * 0x9E3779B97F4A7C15ull;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        float u = float((z & 0xffff) + ((z >> 16) & 0xffff) + ((z >> 32) & 0xffff) + (z >> 48)) / 65536.0f;
        tmp[size_t(i - a)] = (u - 2.0f) * 1.7320508f * 0.02f;  // mean 2, variance 1/3 -> unit variance
      }
      convert_floats(tmp.data(), DType::F32, static_cast<char*>(f.raw()) + a * int64_t(dtype_size(dt)), dt,
                     size_t(b - a));
    });
    return f;
  };
  auto ones = [&](int64_t n) {
    Tensor t = Tensor::empty(DType::F32, {n}, MemCategory::Weights);
    std::fill(t.data<float>(), t.data<float>() + n, 1.0f);
    return t;
  };
  w->embed = randn({c.vocab_size, c.hidden_size}, hold);
  w->final_norm = ones(c.hidden_size);
  for (auto& l : w->layers) {
    l.attn_norm = ones(c.hidden_size);
    l.ffn_norm = ones(c.hidden_size);
  }
  const bool quant = opt.quant != QuantFormat::None;
  for (auto& s : linear_specs(*w, c)) {
    Linear& l = *s.slot;
    l.name = s.name;
    l.in = s.in;
    l.out = s.out;
    bool q = quant && !skipped(s.name, opt);
    fill_linear(l, randn({s.out, s.in}, q ? DType::F32 : hold), opt, hold, q);
    if (s.bias) l.bias = randn({s.out}, DType::F32);
  }
  w->lm_head.name = "lm_head";
  w->lm_head.in = c.hidden_size;
  w->lm_head.out = c.vocab_size;
  bool qh = quant && !skipped("lm_head", opt);
  if (c.tie_word_embeddings && !qh) w->lm_head.weight = w->embed;
  else fill_linear(w->lm_head, randn({c.vocab_size, c.hidden_size}, qh ? DType::F32 : hold), opt, hold, qh);
  return w;
}

}  // namespace qforge

namespace qforge {

std::vector<std::pair<std::string, Tensor>> random_checkpoint_tensors(const ModelConfig& c, DType dt, uint64_t seed) {
  LoadOptions opt;
  auto w = random_weights(c, opt, dt, seed);
  std::vector<std::pair<std::string, Tensor>> out;
  out.emplace_back("model.embed_tokens.weight", w->embed);
  out.emplace_back("model.norm.weight", w->final_norm.to(dt, MemCategory::Weights));
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const auto& l = w->layers[size_t(i)];
    std::string p = "model.layers." + std::to_string(i) + ".";
    out.emplace_back(p + "input_layernorm.weight", l.attn_norm.to(dt, MemCategory::Weights));
    out.emplace_back(p + "post_attention_layernorm.weight", l.ffn_norm.to(dt, MemCategory::Weights));
    for (const Linear* lin : {&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down}) {
      out.emplace_back(lin->name + ".weight", lin->weight);
      if (lin->bias) out.emplace_back(lin->name + ".bias", lin->bias.to(dt, MemCategory::Weights));
    }
  }
  if (!c.tie_word_embeddings) out.emplace_back("lm_head.weight", w->lm_head.weight);
  return out;
}

}  // namespace qforge
