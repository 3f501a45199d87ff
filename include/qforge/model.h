// qforge/model.h — a loaded Llama-family model bound to one backend, with its KV cache
// (one sequence). The same model definition serves every weight format and backend.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "qforge/dtype.h"
#include "qforge/model_config.h"
#include "qforge/quant.h"

namespace qforge {

struct LoadOptions {
  std::optional<DType> dtype;          // how float weights are held; default: checkpoint torch_dtype
  std::string device = "auto";         // auto | cpu | ref | cuda | cuda:N | a list "cuda:0,cpu"
  // Per-device budgets for placement, "cuda:0=20GiB,cpu=64GiB": with `auto` (or a device list) the
  // embeddings, layers and lm_head fill the devices in order within these (device_map="auto").
  std::string max_memory;
  int threads = 0;                     // 0 = all cores
  QuantFormat quant = QuantFormat::None;
  QuantParams quant_params;
  std::optional<DType> compute_dtype;  // unquantized modules when quantizing (default: dtype)
  std::vector<std::string> skip_modules{"lm_head"};  // substrings of module names kept unquantized
};

struct ModelWeights;
class Backend;
struct RopeTable;

// Where a part of the model runs (see Model::placement()).
struct PlacementInfo {
  std::string device;
  int64_t layer_begin = 0, layer_end = 0;  // decoder layers [begin, end)
  bool embed = false, head = false;         // embeddings / final norm + lm_head
  int64_t bytes = 0;                        // weights + budgeted KV cache
};

struct ForwardTimings {
  double seconds = 0;
  int64_t tokens = 0;
};

class Model {
 public:
  ~Model();
  // Loads a model directory or a Hugging Face repo id from the local hub cache.
  static std::unique_ptr<Model> load(const std::string& path_or_repo_id, const LoadOptions& opt = {});
  // A model with random weights (N(0, 0.02), norms 1) for the given config.json (benchmarks).
  static std::unique_ptr<Model> random(const ModelConfig& cfg, const LoadOptions& opt = {}, uint64_t seed = 1);

  const ModelConfig& config() const { return cfg_; }
  const std::string& dir() const { return dir_; }
  std::string backend_name() const;  // "cpu", "cuda:0", or "cuda:0+cpu" when split
  std::vector<PlacementInfo> placement() const;
  DType weight_dtype() const { return weight_dtype_; }
  // The format the linear layers are held in (None: plain weight_dtype()) and its parameters.
  QuantFormat quant_format() const { return quant_; }
  const QuantParams& quant_params() const { return qparams_; }
  size_t weight_bytes() const;  // every weight byte held (quantized scales included)
  // Weight bytes one decode step reads: every linear layer (lm_head included), norms, biases;
  // of the embedding table only one row.
  size_t decode_bytes_per_token() const;

  // Runs `tokens` at positions [pos0, pos0+n). The KV cache must hold positions [0, pos0).
  // Returns logits f32: [vocab] for the last token, or [n, vocab] when all_logits.
  std::vector<float> forward(std::span<const int32_t> tokens, int64_t pos0, bool all_logits = false);
  // For sampling where the logits are (engine/generate.cpp): runs `tokens` like forward() but
  // keeps the last token's logits row in the backend, applies the repetition penalty there to the
  // distinct ids `penalize` and returns the row's k best (value, id) pairs, best first
  // (Backend::select_top_k: NaN first, ties to the lower id). Only those pairs reach the host on a
  // backend that implements the selection (cuda); others copy the row and select on the host.
  struct TopK {
    std::vector<float> values;
    std::vector<int32_t> ids;
  };
  TopK forward_top_k(std::span<const int32_t> tokens, int64_t pos0, int k, std::span<const int32_t> penalize = {},
                     float penalty = 1.0f);
  // The last token's logits row of the last forward_top_k(), as the backend holds it (penalised).
  std::vector<float> last_logits();
  int64_t kv_capacity() const { return kv_capacity_; }
  void reserve_context(int64_t n_positions);  // grow the KV cache ahead of time
  size_t kv_cache_bytes() const;
  // Peak bytes accounted on the host while loading (weights being built + transients), and the
  // streaming bound: final weights plus one layer's largest tensor in f32.
  int64_t load_peak_bytes() const { return load_peak_bytes_; }
  int64_t streaming_bound_bytes() const;

 private:
  Model() = default;
  void init_backend(const LoadOptions& opt);
  struct Segment;
  // Runs the layers; the logits of the last n_logits tokens stay in the returned head segment.
  Segment& run_forward(std::span<const int32_t> tokens, int64_t pos0, int64_t n_logits);
  ModelConfig cfg_;
  std::string dir_;
  DType weight_dtype_ = DType::F32;
  QuantFormat quant_ = QuantFormat::None;
  QuantParams qparams_;
  std::unique_ptr<ModelWeights> w_;
  std::vector<std::unique_ptr<Segment>> segs_;  // in layer order
  std::unique_ptr<RopeTable> rope_;
  int64_t kv_capacity_ = 0;
  int64_t load_peak_bytes_ = 0;
};

}  // namespace qforge
