// backends/backend.h — the small fixed op set every backend implements. The one model
// definition (model/model.cpp) calls only these. Activations are f32 in the backend's own
// memory (host for ref/cpu, device for cuda); `alloc` hands out such buffers.
#pragma once
#include <cstdint>
#include <functional>
#include <span>
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

// How a linear layer's input is formed from the activations. These are the fusions the GPU
// backend exploits (RMSNorm folded into the following GEMV, SwiGLU folded into down_proj).
struct LinearInput {
  const float* x = nullptr;            // [n, in]
  const Tensor* rms_weight = nullptr;  // set: input = rmsnorm(x) * rms_weight (eps below)
  float eps = 0;
  const float* up = nullptr;           // set: input = silu(x) * up, both [n, in] (SwiGLU)
};

struct AttentionShape {
  int64_t heads = 0, kv_heads = 0, head_dim = 0;
  int64_t sliding_window = 0;  // 0 = none; else key j visible to query i when i - window < j <= i
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
  // The part of the model this backend runs when the model is split over devices (set before
  // prepare): a backend that uploads weights in prepare uploads (and budgets) only these.
  struct ModelPart {
    int64_t layer_begin = 0, layer_end = INT64_MAX;  // decoder layers [begin, end)
    bool embed = true, head = true;                  // embeddings; final norm + lm_head
  };
  virtual void set_model_part(const ModelPart& part) {}

  // One forward step over `tokens` at positions [pos0, pos0+n): `ops` issues the step's ops.
  // A backend may record them once and replay them (CUDA graphs for decode); it then takes
  // the token ids and positions from here, not from the ops' arguments.
  virtual void run_step(std::span<const int32_t> tokens, int64_t pos0, const std::function<void()>& ops) { ops(); }

  // out[n, hidden] = table[ids[i]] (f32/f16/bf16 table), ids on the host.
  virtual void embed(const Tensor& table, const int32_t* ids, int64_t n, float* out) = 0;
  // For each i: ys[i][n, out_i] = input · W_iᵀ + b_i, or ys[i] += that when `accumulate`
  // (the residual add). All layers share the input (q/k/v, gate/up run as one pass).
  virtual void linear(std::span<const Linear* const> layers, const LinearInput& in, int64_t n,
                      std::span<float* const> ys, bool accumulate) = 0;
  // The SwiGLU MLP of one layer: y[n, down.out] (+)= down(silu(gate(in)) * up(in)). gate_out and up_out
  // ([n, gate.out] f32 each) are scratch: the default (backends/backend.cpp) puts the two projections
  // there and runs linear({gate, up}) then linear(down) with the SwiGLU input; a backend that fuses
  // more may use them as it likes (their contents are unspecified afterwards).
  virtual void mlp(const Linear& gate, const Linear& up, const Linear& down, const LinearInput& in, int64_t n,
                   float* gate_out, float* up_out, float* y, bool accumulate);
  // RoPE on q [n, heads*hd] and k [n, kv_heads*hd] (token i at position pos0+i), k/v written to the
  // caches [capacity, kv_heads*hd] at pos0.., then causal GQA attention over positions [0, pos0+n) →
  // out [n, heads*hd]. q and k are the backend's to use: rotated in place or left as they were
  // (the CUDA prefill rotates them on the fly); callers must not read them afterwards.
  virtual void attention(float* q, float* k, const float* v, float* k_cache, float* v_cache, int64_t n, int64_t pos0,
                         const AttentionShape& s, const RopeTable& rope, float* out) = 0;

  // Optional capability, for sampling where the logits are (engine/generate.cpp). `logits` is one
  // row [n] in this backend's memory. First applies the repetition penalty in place to the ids
  // `penalize` (distinct, in [0, n); s < 0 ? s * penalty : s / penalty, exactly as Sampler), then
  // writes the row's k best entries (1 <= k <= n) to the host arrays values[k] / ids[k]: largest
  // first, NaN above everything, ties (+0 == -0) to the lower id (sampling/candidates.h).
  // Default (sampling/candidates.cpp): the whole row goes to the host and is selected there. The
  // CUDA backend selects on the GPU, so that only the k (value, id) pairs travel.
  virtual void select_top_k(float* logits, int64_t n, std::span<const int32_t> penalize, float penalty, int k,
                            float* values, int32_t* ids);
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
