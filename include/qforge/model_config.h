// qforge/model_config.h — the normalised model configuration. Hugging Face config.json is
// mirrored once (classic and transformers-5 keys) into this struct; nothing downstream reads
// raw JSON. Supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM.
#pragma once
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "qforge/dtype.h"

namespace qforge {

enum class RopeType { Default, Linear, Llama3, Dynamic, Yarn };

struct RopeScaling {
  RopeType type = RopeType::Default;
  double factor = 1.0;
  double low_freq_factor = 1.0;                  // llama3
  double high_freq_factor = 4.0;                 // llama3
  int64_t original_max_position_embeddings = 0;  // llama3
};

struct ModelConfig {
  std::string architecture;  // "LlamaForCausalLM", ...
  std::string model_type;    // "llama", "mistral", "qwen2"
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  int64_t head_dim = 0;  // explicit or hidden_size / num_attention_heads
  int64_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  bool tie_word_embeddings = false;
  bool attention_bias = false;  // q/k/v (and o when `o_bias`) biases; Qwen2 has q/k/v biases
  bool o_proj_bias = false;
  bool mlp_bias = false;
  std::string hidden_act = "silu";
  std::optional<DType> torch_dtype;  // "dtype" (transformers 5) or "torch_dtype"
  std::optional<int64_t> sliding_window;  // Mistral; informational (applied when < context)
  int64_t bos_token_id = -1;
  std::vector<int64_t> eos_token_ids;
  std::string quantization_config_json;  // raw "quantization_config" object, empty if none

  int64_t q_dim() const { return num_attention_heads * head_dim; }
  int64_t kv_dim() const { return num_key_value_heads * head_dim; }
};

// Parse and validate config.json text. `source` names the file in error messages.
// Throws qforge::Error: "config.json: unsupported architecture 'GPT2LMHeadModel' (supported: ...)".
ModelConfig parse_model_config(const std::string& json_text, const std::string& source);
ModelConfig load_model_config(const std::filesystem::path& config_json);

}  // namespace qforge
