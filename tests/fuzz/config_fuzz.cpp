// tests/fuzz/config_fuzz.cpp — libFuzzer target for parse_model_config. Any input must either give
// a config whose invariants hold (positive sizes, heads divisible, ...) or throw qforge::Error.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "qforge/model_config.h"
#include "qforge/status.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    auto c = qforge::parse_model_config(std::string(reinterpret_cast<const char*>(data), size), "config.json");
    bool ok = c.vocab_size > 0 && c.hidden_size > 0 && c.intermediate_size > 0 && c.num_hidden_layers > 0 &&
              c.num_attention_heads > 0 && c.num_key_value_heads > 0 && c.head_dim > 0 &&
              c.num_attention_heads % c.num_key_value_heads == 0 && c.max_position_embeddings > 0 &&
              c.rms_norm_eps > 0 && c.rope_theta > 0 && c.rope_scaling.factor > 0 && c.q_dim() > 0 && c.kv_dim() > 0 &&
              (!c.sliding_window || *c.sliding_window > 0) && c.hidden_act == "silu";
    if (!ok) std::abort();
  } catch (const qforge::Error&) {
  }
  return 0;
}
