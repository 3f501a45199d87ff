// qforge/memory_estimate.h — memory planning before anything is loaded (issue 5): exact parameter
// counts per component from a ModelConfig, weight bytes per storage scheme (every scale/zero/absmax
// as stored), KV cache, runtime overhead, per-device verdicts and the largest context that fits.
// Built-in presets of well-known configs make it work offline. Formulas: docs/memory.md.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "qforge/dtype.h"
#include "qforge/model_config.h"
#include "qforge/quant.h"

namespace qforge {

// ---- parameters -------------------------------------------------------------------------------

struct ParamCounts {
  int64_t embeddings = 0;         // embed_tokens
  int64_t attention = 0;          // q/k/v/o weights (biases counted in attention_biases)
  int64_t attention_biases = 0;   // q/k/v (+o) biases (Qwen2: q/k/v)
  int64_t mlp = 0;                // gate/up/down weights
  int64_t mlp_biases = 0;         // mlp_bias
  int64_t norms = 0;              // 2 RMSNorm per layer + the final norm
  int64_t lm_head = 0;            // 0 when tied to the embeddings (the tensor is counted once)
  int64_t total() const {
    return embeddings + attention + attention_biases + mlp + mlp_biases + norms + lm_head;
  }
};

// One linear weight of one layer: [out_features, in_features]; the bias (if any) is counted apart.
struct LinearShape {
  std::string_view name;  // "q_proj", ..., "down_proj"
  int64_t out_features = 0;
  int64_t in_features = 0;
  bool has_bias = false;
};

// Throws qforge::Error naming the field when the config is unusable (non-positive sizes, ...).
void validate_for_estimate(const ModelConfig& c);
ParamCounts count_params(const ModelConfig& c);
// The 7 linear layers of one decoder layer (Llama/Mistral/Qwen2 all have the same set).
std::vector<LinearShape> layer_linears(const ModelConfig& c);

// ---- weight storage schemes -------------------------------------------------------------------

// How the decoder's linear weights are stored: a plain dtype (format None) or a quantized format.
struct WeightScheme {
  std::string name;                       // CLI spelling: "bf16", "nf4", "nf4-dq", "int4-g128", ...
  QuantFormat format = QuantFormat::None;
  QuantParams params;
  DType dtype = DType::BF16;              // element type when format == None
  std::string_view description;
};

// Accepted names (case-insensitive): fp32/f32, fp16/f16, bf16, int8, fp8 (e4m3 per tensor),
// fp8-channel, fp8-e5m2, nf4, nf4-dq, fp4, fp4-dq, nvfp4, mxfp4, int4 (=int4-g128), int4-g32,
// int4-g64, int4-g128, q4_0, q8_0, q4_k. nullopt if unknown.
std::optional<WeightScheme> parse_weight_scheme(std::string_view name);
std::vector<std::string> weight_scheme_names();
// The columns of the human table: fp32, fp16/bf16, int8, fp8, nf4, nf4-dq, nvfp4, int4-g128, q4_0.
std::vector<WeightScheme> table_weight_schemes();

// Bits per weight in the limit of large matrices (per-row / per-tensor terms vanish), scales
// included: used by the --params quick formula. bf16 16, nf4 4.5, nf4-dq 4.127, nvfp4 4.5, ...
double analytic_bits_per_weight(const WeightScheme& s);

// Bytes of one [rows, cols] linear weight in scheme `s` (format None: rows*cols*dtype size;
// otherwise quant_storage_bytes).
size_t linear_weight_bytes(const WeightScheme& s, int64_t rows, int64_t cols);

// ---- devices ----------------------------------------------------------------------------------

enum class DeviceKind {
  Cuda,         // discrete GPU: CUDA context + cuBLAS workspace count against its memory
  CudaUnified,  // GPU sharing memory with the CPU (DGX Spark): same overheads, one pool
  Cpu           // CPU inference in system RAM: no CUDA context
};

struct DeviceSpec {
  std::string name;
  int64_t memory_bytes = 0;
  DeviceKind kind = DeviceKind::Cuda;
  std::string note;
};

// DGX Spark, H100 80GB, H200 141GB, A100 40/80GB, RTX 4090, L4, 16/32/64 GB laptops.
const std::vector<DeviceSpec>& known_devices();

// "24GiB", "24GB" (10^9), "80G" (=GiB), "512MiB", "1.5TiB", "25769803776" (bytes). Throws
// qforge::Error naming `flag` on anything else or on a non-positive size.
int64_t parse_byte_size(std::string_view text, std::string_view flag);
// "70B", "7.5b", "500M", "1.1e9", "8030261248". Throws qforge::Error naming `flag`.
int64_t parse_param_count(std::string_view text, std::string_view flag);

// ---- estimate ---------------------------------------------------------------------------------

// Runtime overhead constants, measured on H100 with CUDA 13 (to be refined by `--report-memory`).
inline constexpr int64_t kCudaContextBytes = 500LL << 20;     // CUDA context, ~500 MiB
inline constexpr int64_t kCublasWorkspaceBytes = 32LL << 20;  // cuBLAS(Lt) workspace, 32 MiB
inline constexpr int64_t kDefaultPrefillChunk = 512;          // tokens per prefill step

struct MemoryOptions {
  WeightScheme scheme;                  // how decoder linears are stored
  DType compute_dtype = DType::BF16;    // unquantized modules of a quantized model
  DType kv_dtype = DType::BF16;         // BF16, F16, F8_E4M3 (or F32)
  int64_t context = 4096;               // tokens per sequence
  int64_t batch = 1;                    // sequences
  int64_t prefill_chunk = kDefaultPrefillChunk;
};

struct MemoryEstimate {
  ParamCounts params;
  int64_t weights_bytes = 0;
  int64_t kv_cache_bytes = 0;
  int64_t overhead_bytes = 0;  // CUDA context + cuBLAS workspace (GPU only) + activation scratch
  int64_t total_bytes = 0;
  // Ordered {component, bytes}: embeddings, attention, mlp, norms, lm_head, kv_cache,
  // cuda_context, cublas_workspace, activation_scratch. Sums to total_bytes.
  std::vector<std::pair<std::string, int64_t>> breakdown;
};

// The exact estimate for config `c` on a device of kind `kind`. Throws qforge::Error on a bad
// config or options (naming the field / flag).
MemoryEstimate estimate_memory(const ModelConfig& c, const MemoryOptions& o, DeviceKind kind);

// Individual terms (bytes), as used by estimate_memory.
int64_t weights_bytes(const ModelConfig& c, const WeightScheme& s, DType compute_dtype);
// 2 × layers × KV heads × head_dim × context × batch × bytes per element.
int64_t kv_cache_bytes(const ModelConfig& c, int64_t context, int64_t batch, DType kv_dtype);
// batch × min(context, chunk) × (4·hidden + 2·intermediate + vocab) × 4 bytes (f32 scratch).
int64_t activation_scratch_bytes(const ModelConfig& c, int64_t context, int64_t batch, int64_t chunk);

// Largest context (≤ limit) whose estimate fits in `d`; 0 when not even one token fits.
int64_t max_context_that_fits(const ModelConfig& c, const MemoryOptions& o, const DeviceSpec& d,
                              int64_t limit);
// The same search for any non-decreasing total_at(context): largest n in [1, limit] with
// total_at(n) <= budget, 0 if none.
int64_t largest_fitting_context(const std::function<int64_t(int64_t)>& total_at, int64_t budget, int64_t limit);

// ---- presets ----------------------------------------------------------------------------------

// Names of the built-in configs (TinyLlama-1.1B, Llama-2-7B, ..., Qwen2.5-72B).
std::vector<std::string> preset_names();
// Case-insensitive lookup; nullopt if unknown.
std::optional<ModelConfig> preset_config(std::string_view name);

// The quick `--params N` model: a parameter count priced at analytic bits per weight, with the
// KV-cache / scratch shape borrowed from the preset of nearest size (named in `shape_from`).
struct QuickEstimate {
  int64_t params = 0;
  std::string shape_from;
  ModelConfig shape;
  int64_t weights_bytes = 0;
};
QuickEstimate quick_estimate(int64_t params, const WeightScheme& s);

}  // namespace qforge
