// backends/backend.h — the small fixed op set every backend implements. The one model
// definition (model/forward.cpp) calls only these. Activations are f32 in the backend's own
// memory (host for ref/cpu, device for cuda); `alloc` hands out such buffers.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "model/weights.h"
#include "qforge/model_config.h"

namespace qforge {

// Rotary tables for positions [0, max_pos): cos/sin [max_pos, head_dim/2], f32, computed once
// (in double, rounded to f32) with the config's rope scaling applied to inv_freq.
struct RopeTable {
  int64_t max_pos = 0, half = 0;
  std::vector<float> cos, sin;
};
RopeTable make_rope_table(const ModelConfig& c, int64_t max_pos);

// KV cache for all layers: per layer K and V [max_ctx, kv_heads, head_dim] f32.
struct KvCacheDesc {
  int64_t layers = 0, max_ctx = 0, kv_heads = 0, head_dim = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string_view name() const = 0;

  // Activation/scratch memory in this backend's space (accounted as Scratch or KvCache).
  virtual std::shared_ptr<float> alloc(int64_t n_floats, MemCategory cat) = 0;
  virtual void to_host(const float* src, float* dst, int64_t n) = 0;
  virtual void from_host(const float* src, float* dst, int64_t n) = 0;
  // Called once after loading; may repack or upload weights (Linear::backend_data).
  virtual void prepare(ModelWeights& w, const ModelConfig& c) {}

  // out[n, hidden] = table[ids[i]] (any float dtype table), ids on the host.
  virtual void embed(const Tensor& table, const int32_t* ids, int64_t n, float* out) = 0;
  // y[n, out] = x[n, in] · Wᵀ (+ bias).
  virtual void linear(const Linear& l, const float* x, int64_t n, float* y) = 0;
  // y = x / sqrt(mean(x²) + eps) * w, row by row over n rows of d.
  virtual void rmsnorm(const float* x, const Tensor& w, int64_t n, int64_t d, float eps, float* y) = 0;
  // Rotate n tokens × heads of head_dim in place (HF rotate_half layout); token i at position pos0+i.
  virtual void rope(float* x, int64_t n, int64_t heads, int64_t head_dim, int64_t pos0, const RopeTable& t) = 0;
  // Write k/v [n, kv_dim] into the cache at positions pos0.., then causal GQA attention of
  // q [n, heads*head_dim] over cache positions [0, pos0+n) → out [n, heads*head_dim].
  virtual void attention(const float* q, const float* k, const float* v, float* k_cache, float* v_cache,
                         int64_t n, int64_t pos0, int64_t heads, int64_t kv_heads, int64_t head_dim,
                         int64_t sliding_window, float* out) = 0;
  // out = silu(gate) * up, element-wise over n.
  virtual void swiglu(const float* gate, const float* up, int64_t n, float* out) = 0;
  // x += y over n.
  virtual void add(float* x, const float* y, int64_t n) = 0;
};

// "ref" (scalar ground truth), "cpu" (threads + SIMD), "cuda" when built and a GPU is present.
std::unique_ptr<Backend> make_backend(const std::string& name);
std::vector<std::string> available_backends();

using BackendFactory = std::unique_ptr<Backend> (*)();
// Backends outside the core (cuda) register at start-up through a static BackendRegistrar.
struct BackendRegistrar {
  BackendRegistrar(const char* name, BackendFactory f, bool (*usable)());
};

}  // namespace qforge
