// model/model.cpp — the one model definition: Llama-family forward pass (embeddings, RMSNorm,
// RoPE, GQA attention with KV cache, SwiGLU MLP, residuals, final norm, lm_head) written once
// against the Backend op set, plus loading and KV cache management.
#include "qforge/model.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <sstream>

#include "backends/backend.h"
#include "backends/gpu_info.h"
#include "core/thread_pool.h"
#include "io/checkpoint.h"
#include "model/gguf_model.h"
#include "model/placement.h"
#include "model/weights.h"
#include "qforge/memory.h"
#include "qforge/status.h"

namespace qforge {

DType resolve_hold_dtype(const ModelConfig& cfg, const LoadOptions& opt);
std::unique_ptr<ModelWeights> load_weights(const io::Checkpoint& ck, const ModelConfig& c, const LoadOptions& opt,
                                           DType hold);
std::unique_ptr<ModelWeights> random_weights(const ModelConfig& c, const LoadOptions& opt, DType hold, uint64_t seed);

// One device's part of the model: a backend, the layers [begin, end) it runs (and whether it
// runs the embeddings / the head), its activation buffers and its layers' KV caches.
struct Model::Segment {
  PlacementSegment place;
  std::unique_ptr<Backend> be;
  int64_t n_cap = 0;       // tokens the activation buffers hold
  int64_t logits_cap = 0;  // rows the logits buffer holds
  std::shared_ptr<float> x, q, k, v, att, gate, up, logits;
  std::vector<std::shared_ptr<float>> k_cache, v_cache;  // per layer of the segment [kv_capacity, kv_dim]
};

Model::~Model() = default;

std::string Model::backend_name() const {
  std::string n;
  for (const auto& sg : segs_) n += (n.empty() ? "" : "+") + sg->place.device;
  return n;
}

std::vector<PlacementInfo> Model::placement() const {
  std::vector<PlacementInfo> v;
  for (const auto& sg : segs_)
    v.push_back({sg->place.device, sg->place.layer_begin, sg->place.layer_end, sg->place.embed, sg->place.head,
                 sg->place.bytes});
  return v;
}
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
  // Candidate devices: "auto" = every usable GPU then the CPU; otherwise the given list.
  std::vector<std::string> devices;
  if (opt.device == "auto") {
    for (const auto& g : list_gpus()) devices.push_back("cuda:" + std::to_string(g.index));
    devices.push_back("cpu");
  } else {
    std::stringstream ss(opt.device);
    for (std::string d; std::getline(ss, d, ',');)
      if (!d.empty()) devices.push_back(d == "cuda" ? "cuda:0" : d);
  }
  auto budgets = parse_max_memory(opt.max_memory);
  const size_t margin = size_t(1) << 30;  // CUDA context, cuBLAS workspace and activations
  for (const auto& d : devices)
    if (d.rfind("cuda:", 0) == 0 && !budgets.count(d)) {
      size_t free = gpu_free_bytes(std::stoi(d.substr(5)));
      if (opt.device == "auto" || devices.size() > 1) budgets[d] = free > margin ? int64_t(free - margin) : 0;
    }
  // A single explicit device takes everything (its backend reports out-of-memory itself).
  const int64_t kv_positions = std::min<int64_t>(cfg_.max_position_embeddings, 4096);
  auto plan = devices.size() == 1 ? std::vector<PlacementSegment>{{devices[0], 0, cfg_.num_hidden_layers, true, true,
                                                                   int64_t(w_->total_bytes())}}
                                  : plan_placement(*w_, cfg_, devices, budgets, kv_positions);
  for (auto& p : plan) {
    auto sg = std::make_unique<Segment>();
    sg->place = p;
    sg->be = make_backend(p.device);
    sg->be->set_model_part({p.layer_begin, p.layer_end, p.embed, p.head});
    sg->be->prepare(*w_, cfg_);
    segs_.push_back(std::move(sg));
  }
  rope_ = std::make_unique<RopeTable>(make_rope_table(cfg_, cfg_.max_position_embeddings));
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
  std::vector<float> tmp;
  for (auto& sg : segs_) {
    const size_t layers = size_t(sg->place.layer_end - sg->place.layer_begin);
    sg->k_cache.resize(layers);
    sg->v_cache.resize(layers);
    for (size_t l = 0; l < layers; ++l) {
      for (auto* cache : {&sg->k_cache[l], &sg->v_cache[l]}) {
        auto fresh = sg->be->alloc(n * kvd, MemCategory::KvCache);
        if (*cache && kv_capacity_ > 0) {  // keep what is cached (through the host: rare, on growth)
          tmp.resize(size_t(kv_capacity_ * kvd));
          sg->be->to_host(cache->get(), tmp.data(), kv_capacity_ * kvd);
          sg->be->from_host(tmp.data(), fresh.get(), kv_capacity_ * kvd);
        }
        *cache = std::move(fresh);
      }
    }
  }
  kv_capacity_ = n;
}

std::vector<float> Model::forward(std::span<const int32_t> tokens, int64_t pos0, bool all_logits) {
  const int64_t n_logits = all_logits ? int64_t(tokens.size()) : 1;
  Segment& head = run_forward(tokens, pos0, n_logits);
  std::vector<float> out(size_t(n_logits * cfg_.vocab_size));
  head.be->to_host(head.logits.get(), out.data(), n_logits * cfg_.vocab_size);
  return out;
}

Model::TopK Model::forward_top_k(std::span<const int32_t> tokens, int64_t pos0, int k, std::span<const int32_t> penalize,
                                 float penalty) {
  const int64_t V = cfg_.vocab_size;
  if (k < 1 || k > V) throw Error("forward_top_k: k = " + std::to_string(k) + " outside [1, " + std::to_string(V) + "]");
  for (int32_t id : penalize)
    if (id < 0 || id >= V) throw Error("forward_top_k: penalised id " + std::to_string(id) + " outside the vocabulary");
  Segment& head = run_forward(tokens, pos0, 1);
  TopK r;
  r.values.resize(size_t(k));
  r.ids.resize(size_t(k));
  head.be->select_top_k(head.logits.get(), V, penalize, penalty, k, r.values.data(), r.ids.data());
  return r;
}

std::vector<float> Model::last_logits() {
  for (auto& sg : segs_)
    if (sg->place.head && sg->logits) {
      std::vector<float> out(size_t(cfg_.vocab_size));
      sg->be->to_host(sg->logits.get(), out.data(), cfg_.vocab_size);
      return out;
    }
  throw Error("last_logits: no forward has run yet");
}

Model::Segment& Model::run_forward(std::span<const int32_t> tokens, int64_t pos0, int64_t n_logits) {
  const auto& c = cfg_;
  const int64_t n = int64_t(tokens.size());
  if (n == 0) throw Error("forward: no tokens");
  if (pos0 + n > c.max_position_embeddings)
    throw Error("sequence of " + std::to_string(pos0 + n) + " tokens exceeds max_position_embeddings (" +
                std::to_string(c.max_position_embeddings) + ")");
  if (pos0 + n > kv_capacity_) reserve_context(std::max(pos0 + n, std::min<int64_t>(2 * kv_capacity_, c.max_position_embeddings)));
  const int64_t H = c.hidden_size, Q = c.q_dim(), KV = c.kv_dim(), I = c.intermediate_size, V = c.vocab_size;
  const float eps = float(c.rms_norm_eps);
  const AttentionShape shape{c.num_attention_heads, c.num_key_value_heads, c.head_dim, c.sliding_window.value_or(0)};
  Segment* head_seg = nullptr;
  std::vector<float> hidden;  // the residual stream crossing from one device to the next
  for (size_t si = 0; si < segs_.size(); ++si) {
    Segment& b = *segs_[si];
    Backend& be = *b.be;
    if (n > b.n_cap) {
      b.n_cap = n;
      b.x = be.alloc(n * H, MemCategory::Scratch);
      b.q = be.alloc(n * Q, MemCategory::Scratch);
      b.k = be.alloc(n * KV, MemCategory::Scratch);
      b.v = be.alloc(n * KV, MemCategory::Scratch);
      b.att = be.alloc(n * Q, MemCategory::Scratch);
      b.gate = be.alloc(n * I, MemCategory::Scratch);
      b.up = be.alloc(n * I, MemCategory::Scratch);
    }
    if (b.place.head && n_logits > b.logits_cap) {
      b.logits = be.alloc(n_logits * V, MemCategory::Scratch);
      b.logits_cap = n_logits;
    }
    if (!b.place.embed) be.from_host(hidden.data(), b.x.get(), n * H);
    be.run_step(tokens, pos0, [&] {
      if (b.place.embed) be.embed(w_->embed, tokens.data(), n, b.x.get());
      for (int64_t li = b.place.layer_begin; li < b.place.layer_end; ++li) {
        const LayerWeights& L = w_->layers[size_t(li)];
        const size_t lc = size_t(li - b.place.layer_begin);
        const Linear* qkv[] = {&L.q, &L.k, &L.v};
        float* qkv_out[] = {b.q.get(), b.k.get(), b.v.get()};
        be.linear(qkv, {b.x.get(), &L.attn_norm, eps}, n, qkv_out, false);
        AttentionShape s = shape;
        if (!c.layer_uses_sliding_window(li)) s.sliding_window = 0;
        be.attention(b.q.get(), b.k.get(), b.v.get(), b.k_cache[lc].get(), b.v_cache[lc].get(), n, pos0, s, *rope_,
                     b.att.get());
        const Linear* o[] = {&L.o};
        float* x_out[] = {b.x.get()};
        be.linear(o, {b.att.get()}, n, x_out, true);
        be.mlp(L.gate, L.up, L.down, {b.x.get(), &L.ffn_norm, eps}, n, b.gate.get(), b.up.get(), b.x.get(), true);
      }
      if (b.place.head) {
        const Linear* head[] = {&w_->lm_head};
        float* logits_out[] = {b.logits.get()};
        be.linear(head, {b.x.get() + (n - n_logits) * H, &w_->final_norm, eps}, n_logits, logits_out, false);
      }
    });
    if (b.place.head) {
      head_seg = &b;  // the logits stay in this backend: forward() / forward_top_k() take them
    } else {
      hidden.resize(size_t(n * H));
      be.to_host(b.x.get(), hidden.data(), n * H);
    }
  }
  if (!head_seg) throw Error("forward: no device holds the lm_head");
  return *head_seg;
}

}  // namespace qforge
