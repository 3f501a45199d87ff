// model/model.cpp — the one model definition: Llama-family forward pass (embeddings, RMSNorm,
// RoPE, GQA attention with KV cache, SwiGLU MLP, residuals, final norm, lm_head) written once
// against the Backend op set, plus loading and KV cache management.
#include "qforge/model.h"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "backends/backend.h"
#include "core/thread_pool.h"
#include "io/checkpoint.h"
#include "model/gguf_model.h"
#include "model/weights.h"
#include "qforge/memory.h"
#include "qforge/status.h"

namespace qforge {

DType resolve_hold_dtype(const ModelConfig& cfg, const LoadOptions& opt);
std::unique_ptr<ModelWeights> load_weights(const io::Checkpoint& ck, const ModelConfig& c, const LoadOptions& opt,
                                           DType hold);
std::unique_ptr<ModelWeights> random_weights(const ModelConfig& c, const LoadOptions& opt, DType hold, uint64_t seed);

struct Model::Buffers {
  int64_t n_cap = 0;       // tokens the activation buffers hold
  int64_t logits_cap = 0;  // rows the logits buffer holds
  std::shared_ptr<float> x, q, k, v, att, gate, up, logits;
  std::vector<std::shared_ptr<float>> k_cache, v_cache;  // per layer [kv_capacity, kv_dim]
};

Model::~Model() = default;

std::string Model::backend_name() const { return std::string(be_->name()); }
size_t Model::weight_bytes() const { return w_->total_bytes(); }
size_t Model::decode_bytes_per_token() const {
  const auto& w = *w_;
  size_t n = w.final_norm.nbytes() + w.lm_head.weight_bytes() + size_t(cfg_.hidden_size) * dtype_size(w.embed.dtype());
  for (const auto& l : w.layers) {
    n += l.attn_norm.nbytes() + l.ffn_norm.nbytes();
    for (const Linear* p : {&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down}) n += p->weight_bytes() + p->bias.nbytes();
  }
  return n;
}

int64_t Model::streaming_bound_bytes() const {
  const auto& c = cfg_;
  int64_t largest = std::max({c.vocab_size * c.hidden_size, c.intermediate_size * c.hidden_size, c.q_dim() * c.hidden_size});
  return int64_t(w_->total_bytes()) + largest * int64_t(sizeof(float));
}

size_t Model::kv_cache_bytes() const {
  return size_t(2 * cfg_.num_hidden_layers * kv_capacity_ * cfg_.kv_dim()) * sizeof(float);
}

void Model::init_backend(const LoadOptions& opt) {
  ThreadPool::set_global_threads(opt.threads);
  std::string dev = opt.device;
  if (dev == "auto") {
    auto av = available_backends();
    dev = std::find(av.begin(), av.end(), "cuda") != av.end() ? "cuda" : "cpu";
  }
  be_ = make_backend(dev);
  be_->prepare(*w_, cfg_);
  rope_ = std::make_unique<RopeTable>(make_rope_table(cfg_, cfg_.max_position_embeddings));
  buf_ = std::make_unique<Buffers>();
}

std::unique_ptr<Model> Model::load(const std::string& path_or_repo_id, const LoadOptions& opt) {
  if (is_gguf_path(path_or_repo_id)) {  // a GGUF file (model/gguf_model.cpp)
    std::unique_ptr<Model> m(new Model());
    const int64_t base = MemoryAccounting::device_total(MemDevice::Host).current;
    MemoryAccounting::reset_peaks();
    auto g = load_gguf_model(path_or_repo_id, opt);
    m->load_peak_bytes_ = MemoryAccounting::device_total(MemDevice::Host).peak - base;
    m->cfg_ = std::move(g.cfg);
    m->dir_ = path_or_repo_id;
    m->weight_dtype_ = g.hold;
    m->w_ = std::move(g.weights);
    m->quant_ = opt.quant;
    m->qparams_ = opt.quant_params;
    if (m->w_->layers.size() && m->w_->layers[0].q.quantized()) {
      m->quant_ = m->w_->layers[0].q.qweight.format;
      m->qparams_ = m->w_->layers[0].q.qweight.params;
    }
    m->init_backend(opt);
    return m;
  }
  auto dir = io::resolve_model_dir(path_or_repo_id);
  std::unique_ptr<Model> m(new Model());
  m->cfg_ = load_model_config(dir / "config.json");
  m->dir_ = dir.string();
  m->weight_dtype_ = resolve_hold_dtype(m->cfg_, opt);
  auto ck = io::Checkpoint::open(dir);
  const int64_t base = MemoryAccounting::device_total(MemDevice::Host).current;
  MemoryAccounting::reset_peaks();
  m->w_ = load_weights(ck, m->cfg_, opt, m->weight_dtype_);
  m->load_peak_bytes_ = MemoryAccounting::device_total(MemDevice::Host).peak - base;
  m->quant_ = opt.quant;
  m->qparams_ = opt.quant_params;
  for (const auto& l : m->w_->layers)
    if (l.q.quantized()) {  // pre-quantized checkpoints say their format in the weights
      m->quant_ = l.q.qweight.format;
      m->qparams_ = l.q.qweight.params;
      break;
    }
  m->init_backend(opt);
  return m;
}

std::unique_ptr<Model> Model::random(const ModelConfig& cfg, const LoadOptions& opt, uint64_t seed) {
  std::unique_ptr<Model> m(new Model());
  m->cfg_ = cfg;
  m->weight_dtype_ = resolve_hold_dtype(cfg, opt);
  ThreadPool::set_global_threads(opt.threads);
  m->w_ = random_weights(cfg, opt, m->weight_dtype_, seed);
  m->quant_ = opt.quant;
  m->qparams_ = opt.quant_params;
  m->init_backend(opt);
  return m;
}

void Model::reserve_context(int64_t n) {
  n = std::min(n, cfg_.max_position_embeddings);
  if (n <= kv_capacity_) return;
  const int64_t kvd = cfg_.kv_dim();
  auto& b = *buf_;
  if (b.k_cache.empty()) {
    b.k_cache.resize(size_t(cfg_.num_hidden_layers));
    b.v_cache.resize(size_t(cfg_.num_hidden_layers));
  }
  std::vector<float> tmp;
  for (size_t l = 0; l < b.k_cache.size(); ++l) {
    for (auto* cache : {&b.k_cache[l], &b.v_cache[l]}) {
      auto fresh = be_->alloc(n * kvd, MemCategory::KvCache);
      if (*cache && kv_capacity_ > 0) {  // keep what is cached (through the host: rare, on growth)
        tmp.resize(size_t(kv_capacity_ * kvd));
        be_->to_host(cache->get(), tmp.data(), kv_capacity_ * kvd);
        be_->from_host(tmp.data(), fresh.get(), kv_capacity_ * kvd);
      }
      *cache = std::move(fresh);
    }
  }
  kv_capacity_ = n;
}

std::vector<float> Model::forward(std::span<const int32_t> tokens, int64_t pos0, bool all_logits) {
  const auto& c = cfg_;
  const int64_t n = int64_t(tokens.size());
  if (n == 0) throw Error("forward: no tokens");
  if (pos0 + n > c.max_position_embeddings)
    throw Error("sequence of " + std::to_string(pos0 + n) + " tokens exceeds max_position_embeddings (" +
                std::to_string(c.max_position_embeddings) + ")");
  if (pos0 + n > kv_capacity_) reserve_context(std::max(pos0 + n, std::min<int64_t>(2 * kv_capacity_, c.max_position_embeddings)));
  auto& b = *buf_;
  const int64_t H = c.hidden_size, Q = c.q_dim(), KV = c.kv_dim(), I = c.intermediate_size, V = c.vocab_size;
  const int64_t n_logits = all_logits ? n : 1;
  if (n > b.n_cap) {
    b.n_cap = n;
    b.x = be_->alloc(n * H, MemCategory::Scratch);
    b.q = be_->alloc(n * Q, MemCategory::Scratch);
    b.k = be_->alloc(n * KV, MemCategory::Scratch);
    b.v = be_->alloc(n * KV, MemCategory::Scratch);
    b.att = be_->alloc(n * Q, MemCategory::Scratch);
    b.gate = be_->alloc(n * I, MemCategory::Scratch);
    b.up = be_->alloc(n * I, MemCategory::Scratch);
  }
  if (n_logits > b.logits_cap) {
    b.logits = be_->alloc(n_logits * V, MemCategory::Scratch);
    b.logits_cap = n_logits;
  }
  float* logits = b.logits.get();
  const float eps = float(c.rms_norm_eps);
  const AttentionShape shape{c.num_attention_heads, c.num_key_value_heads, c.head_dim, c.sliding_window.value_or(0)};
  Backend& be = *be_;
  be.run_step(tokens, pos0, [&] {
    be.embed(w_->embed, tokens.data(), n, b.x.get());
    for (int64_t li = 0; li < c.num_hidden_layers; ++li) {
      const LayerWeights& L = w_->layers[size_t(li)];
      const Linear* qkv[] = {&L.q, &L.k, &L.v};
      float* qkv_out[] = {b.q.get(), b.k.get(), b.v.get()};
      be.linear(qkv, {b.x.get(), &L.attn_norm, eps}, n, qkv_out, false);
      AttentionShape s = shape;
      if (!c.layer_uses_sliding_window(li)) s.sliding_window = 0;
      be.attention(b.q.get(), b.k.get(), b.v.get(), b.k_cache[size_t(li)].get(), b.v_cache[size_t(li)].get(), n, pos0, s,
                   *rope_, b.att.get());
      const Linear* o[] = {&L.o};
      float* x_out[] = {b.x.get()};
      be.linear(o, {b.att.get()}, n, x_out, true);
      const Linear* gate_up[] = {&L.gate, &L.up};
      float* gu_out[] = {b.gate.get(), b.up.get()};
      be.linear(gate_up, {b.x.get(), &L.ffn_norm, eps}, n, gu_out, false);
      const Linear* down[] = {&L.down};
      be.linear(down, {b.gate.get(), nullptr, 0, b.up.get()}, n, x_out, true);
    }
    const Linear* head[] = {&w_->lm_head};
    float* logits_out[] = {logits};
    be.linear(head, {b.x.get() + (n - n_logits) * H, &w_->final_norm, eps}, n_logits, logits_out, false);
  });
  std::vector<float> out(size_t(n_logits * V));
  be.to_host(logits, out.data(), n_logits * V);
  return out;
}

}  // namespace qforge
