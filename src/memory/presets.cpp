// memory/presets.cpp — built-in configs of well-known models so that `qforge mem --preset` works
// offline. Values are those of each model's Hugging Face config.json (the shape fields that
// decide memory: vocab, hidden, intermediate, layers, heads, KV heads, head_dim, tied, biases).
// Qwen2.5 rows use the Instruct configs (max_position_embeddings 32768; 128K only with YaRN).
#include <cctype>
#include <string>

#include "qforge/memory_estimate.h"

namespace qforge {

namespace {

struct PresetRow {
  std::string_view name;
  std::string_view architecture;
  std::string_view model_type;
  int64_t vocab, hidden, intermediate, layers, heads, kv_heads, head_dim, max_pos;
  double eps, rope_theta;
  bool tied, qkv_bias;
  DType dtype;
  int64_t sliding_window;  // 0 = none
  double llama3_factor;    // 0 = default RoPE; else llama3 scaling (orig 8192, low 1, high 4)
};

constexpr std::string_view kLlama = "LlamaForCausalLM";
constexpr std::string_view kMistral = "MistralForCausalLM";
constexpr std::string_view kQwen2 = "Qwen2ForCausalLM";

// clang-format off
constexpr PresetRow kPresets[] = {
  // name              arch     type       vocab   hidden inter  L    H    KV  hd   maxpos  eps   theta    tied  bias  dtype        sw    llama3
  {"TinyLlama-1.1B",   kLlama,  "llama",   32000,  2048,  5632,  22,  32,  4,  64,  2048,   1e-5, 1e4,     false,false,DType::BF16, 0,    0},
  {"Llama-2-7B",       kLlama,  "llama",   32000,  4096,  11008, 32,  32,  32, 128, 4096,   1e-5, 1e4,     false,false,DType::F16,  0,    0},
  {"Llama-2-13B",      kLlama,  "llama",   32000,  5120,  13824, 40,  40,  40, 128, 4096,   1e-5, 1e4,     false,false,DType::F16,  0,    0},
  {"Llama-2-70B",      kLlama,  "llama",   32000,  8192,  28672, 80,  64,  8,  128, 4096,   1e-5, 1e4,     false,false,DType::F16,  0,    0},
  {"Llama-3-8B",       kLlama,  "llama",   128256, 4096,  14336, 32,  32,  8,  128, 8192,   1e-5, 5e5,     false,false,DType::BF16, 0,    0},
  {"Llama-3-70B",      kLlama,  "llama",   128256, 8192,  28672, 80,  64,  8,  128, 8192,   1e-5, 5e5,     false,false,DType::BF16, 0,    0},
  {"Llama-3.1-8B",     kLlama,  "llama",   128256, 4096,  14336, 32,  32,  8,  128, 131072, 1e-5, 5e5,     false,false,DType::BF16, 0,    8},
  {"Llama-3.1-70B",    kLlama,  "llama",   128256, 8192,  28672, 80,  64,  8,  128, 131072, 1e-5, 5e5,     false,false,DType::BF16, 0,    8},
  {"Llama-3.1-405B",   kLlama,  "llama",   128256, 16384, 53248, 126, 128, 8,  128, 131072, 1e-5, 5e5,     false,false,DType::BF16, 0,    8},
  {"Llama-3.2-1B",     kLlama,  "llama",   128256, 2048,  8192,  16,  32,  8,  64,  131072, 1e-5, 5e5,     true, false,DType::BF16, 0,    32},
  {"Llama-3.2-3B",     kLlama,  "llama",   128256, 3072,  8192,  28,  24,  8,  128, 131072, 1e-5, 5e5,     true, false,DType::BF16, 0,    32},
  {"Mistral-7B-v0.1",  kMistral,"mistral", 32000,  4096,  14336, 32,  32,  8,  128, 32768,  1e-5, 1e4,     false,false,DType::BF16, 4096, 0},
  {"Mistral-7B-v0.3",  kMistral,"mistral", 32768,  4096,  14336, 32,  32,  8,  128, 32768,  1e-5, 1e6,     false,false,DType::BF16, 0,    0},
  {"Qwen2.5-0.5B",     kQwen2,  "qwen2",   151936, 896,   4864,  24,  14,  2,  64,  32768,  1e-6, 1e6,     true, true, DType::BF16, 0,    0},
  {"Qwen2.5-1.5B",     kQwen2,  "qwen2",   151936, 1536,  8960,  28,  12,  2,  128, 32768,  1e-6, 1e6,     true, true, DType::BF16, 0,    0},
  {"Qwen2.5-3B",       kQwen2,  "qwen2",   151936, 2048,  11008, 36,  16,  2,  128, 32768,  1e-6, 1e6,     true, true, DType::BF16, 0,    0},
  {"Qwen2.5-7B",       kQwen2,  "qwen2",   152064, 3584,  18944, 28,  28,  4,  128, 32768,  1e-6, 1e6,     false,true, DType::BF16, 0,    0},
  {"Qwen2.5-14B",      kQwen2,  "qwen2",   152064, 5120,  13824, 48,  40,  8,  128, 32768,  1e-6, 1e6,     false,true, DType::BF16, 0,    0},
  {"Qwen2.5-32B",      kQwen2,  "qwen2",   152064, 5120,  27648, 64,  40,  8,  128, 32768,  1e-6, 1e6,     false,true, DType::BF16, 0,    0},
  {"Qwen2.5-72B",      kQwen2,  "qwen2",   152064, 8192,  29568, 80,  64,  8,  128, 32768,  1e-6, 1e6,     false,true, DType::BF16, 0,    0},
};
// clang-format on

// "Mistral-7B" (as the issue spells it) is v0.1, the original release.
constexpr std::pair<std::string_view, std::string_view> kAliases[] = {{"Mistral-7B", "Mistral-7B-v0.1"}};

std::string lower(std::string_view s) {
  std::string l(s);
  for (auto& ch : l) ch = char(std::tolower(static_cast<unsigned char>(ch)));
  return l;
}

ModelConfig to_config(const PresetRow& r) {
  ModelConfig c;
  c.architecture = std::string(r.architecture);
  c.model_type = std::string(r.model_type);
  c.vocab_size = r.vocab;
  c.hidden_size = r.hidden;
  c.intermediate_size = r.intermediate;
  c.num_hidden_layers = r.layers;
  c.num_attention_heads = r.heads;
  c.num_key_value_heads = r.kv_heads;
  c.head_dim = r.head_dim;
  c.max_position_embeddings = r.max_pos;
  c.rms_norm_eps = r.eps;
  c.rope_theta = r.rope_theta;
  if (r.llama3_factor > 0) {
    c.rope_scaling.type = RopeType::Llama3;
    c.rope_scaling.factor = r.llama3_factor;
    c.rope_scaling.low_freq_factor = 1.0;
    c.rope_scaling.high_freq_factor = 4.0;
    c.rope_scaling.original_max_position_embeddings = 8192;
  }
  c.tie_word_embeddings = r.tied;
  c.attention_bias = r.qkv_bias;  // Qwen2: q/k/v biases, no o_proj bias
  c.torch_dtype = r.dtype;
  if (r.sliding_window > 0) c.sliding_window = r.sliding_window;
  return c;
}

}  // namespace

std::vector<std::string> preset_names() {
  std::vector<std::string> v;
  for (const auto& r : kPresets) v.emplace_back(r.name);
  return v;
}

std::optional<ModelConfig> preset_config(std::string_view name) {
  std::string l = lower(name);
  for (const auto& [alias, target] : kAliases)
    if (l == lower(alias)) l = lower(target);
  for (const auto& r : kPresets)
    if (lower(r.name) == l) return to_config(r);
  return std::nullopt;
}

}  // namespace qforge
