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
  bool attention_bias = false;  // q/k/v biases (Llama: attention_bias; Qwen2: always; Mistral: never)
  bool o_proj_bias = false;     // o_proj bias (Llama: attention_bias; Qwen2/Mistral: never)
  bool mlp_bias = false;        // gate/up/down biases (Llama mlp_bias; others never)
  std::string hidden_act = "silu";  // the only activation accepted ("swish" is read as "silu")
  std::optional<DType> torch_dtype;  // "dtype" (transformers 5) or "torch_dtype"
  // Sliding-window attention: layers >= sliding_window_first_layer attend to the last
  // `sliding_window` positions. Mistral: every layer; Qwen2: only with use_sliding_window, from
  // max_window_layers on (both as transformers decides it). nullopt: full attention everywhere.
  std::optional<int64_t> sliding_window;
  int64_t sliding_window_first_layer = 0;
  int64_t bos_token_id = -1;
  std::vector<int64_t> eos_token_ids;
  std::string quantization_config_json;  // raw "quantization_config" object, empty if none

  bool layer_uses_sliding_window(int64_t layer) const {
    return sliding_window.has_value() && layer >= sliding_window_first_layer;
  }
  int64_t q_dim() const { return num_attention_heads * head_dim; }
  int64_t kv_dim() const { return num_key_value_heads * head_dim; }
};

// Parse and validate config.json text. `source` names the file in error messages. Keys missing
// from the file take the defaults of the transformers config class of the architecture; null
// counts as missing. Rope types accepted: default, linear, llama3 (yarn/dynamic are refused).
// Throws qforge::Error: "config.json: unsupported architecture 'GPT2LMHeadModel' (supported: ...)".
ModelConfig parse_model_config(const std::string& json_text, const std::string& source);
ModelConfig load_model_config(const std::filesystem::path& config_json);

}  // namespace qforge
