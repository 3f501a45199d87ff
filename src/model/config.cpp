// model/config.cpp — config.json → ModelConfig, once. Mirrors the transformers config classes of
// LlamaForCausalLM, MistralForCausalLM and Qwen2ForCausalLM (their defaults for missing keys,
// classic and transformers-5 rope/dtype keys), then validates every value. Each error is one line
// naming the file and the key.
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "qforge/model_config.h"
#include "qforge/status.h"

namespace qforge {

namespace {

using nlohmann::json;

// transformers' defaults for keys a config.json may omit (LlamaConfig, MistralConfig, Qwen2Config).
struct ArchDefaults {
  const char* architecture;
  const char* model_type;
  int64_t vocab_size, hidden_size, intermediate_size, num_hidden_layers, num_attention_heads;
  int64_t num_key_value_heads;  // 0: same as num_attention_heads
  int64_t max_position_embeddings;
  int64_t sliding_window;  // 0: none
  int64_t bos_token_id;    // -1: none
  int64_t eos_token_id;    // -1: none
};

constexpr ArchDefaults kArchs[] = {
    {"LlamaForCausalLM", "llama", 32000, 4096, 11008, 32, 32, 0, 2048, 0, 1, 2},
    {"MistralForCausalLM", "mistral", 32000, 4096, 14336, 32, 32, 8, 4096 * 32, 4096, 1, 2},
    {"Qwen2ForCausalLM", "qwen2", 151936, 4096, 22016, 32, 32, 32, 32768, 4096, -1, -1},
};

constexpr int64_t kMaxDim = int64_t(1) << 24;  // far above any real model; keeps products in int64
constexpr int64_t kMaxPositions = (int64_t(1) << 31) - 1;

std::string supported_list() {
  std::string s;
  for (const auto& a : kArchs) s += (s.empty() ? "" : ", ") + std::string(a.architecture);
  return s;
}

// Short, one-line rendering of a JSON value for messages.
std::string show(const json& v) {
  std::string s = v.dump(-1, ' ', true, json::error_handler_t::replace);
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  return s;
}

// A string from the file, escaped and shortened for a one-line message (no quotes).
std::string show_str(const std::string& s) {
  std::string q = show(json(s));
  return q.size() >= 2 && q.front() == '"' && q.back() == '"' ? q.substr(1, q.size() - 2) : q;
}

// Typed access to one JSON object; `prefix` names nested objects ("rope_scaling.") in errors.
class Keys {
 public:
  Keys(const json& obj, const std::string& source, std::string prefix = "")
      : obj_(obj), source_(source), prefix_(std::move(prefix)) {}

  [[noreturn]] void fail(const std::string& key, const std::string& problem) const {
    throw Error(source_ + ": key '" + prefix_ + key + "' " + problem);
  }
  // nullptr when absent or null.
  const json* get(const std::string& key) const {
    auto it = obj_.find(key);
    return it == obj_.end() || it->is_null() ? nullptr : &*it;
  }
  bool present(const std::string& key) const { return obj_.contains(key); }

  std::optional<int64_t> opt_int(const std::string& key) const {
    const json* v = get(key);
    if (!v) return std::nullopt;
    if (v->is_number_unsigned()) {
      if (v->get<uint64_t>() > uint64_t(INT64_MAX)) fail(key, "is out of range (" + show(*v) + ")");
      return int64_t(v->get<uint64_t>());
    }
    if (!v->is_number_integer()) fail(key, "must be an integer (got " + show(*v) + ")");
    return v->get<int64_t>();
  }
  int64_t int_or(const std::string& key, int64_t def) const { return opt_int(key).value_or(def); }

  std::optional<double> opt_double(const std::string& key) const {
    const json* v = get(key);
    if (!v) return std::nullopt;
    if (!v->is_number()) fail(key, "must be a number (got " + show(*v) + ")");
    double d = v->get<double>();
    if (!std::isfinite(d)) fail(key, "must be finite (got " + show(*v) + ")");
    return d;
  }
  double double_or(const std::string& key, double def) const { return opt_double(key).value_or(def); }

  bool bool_or(const std::string& key, bool def) const {
    const json* v = get(key);
    if (!v) return def;
    if (!v->is_boolean()) fail(key, "must be true or false (got " + show(*v) + ")");
    return v->get<bool>();
  }

  std::optional<std::string> opt_string(const std::string& key) const {
    const json* v = get(key);
    if (!v) return std::nullopt;
    if (!v->is_string()) fail(key, "must be a string (got " + show(*v) + ")");
    return v->get<std::string>();
  }

  // A positive size within [1, max].
  int64_t size_in_range(const std::string& key, int64_t value, int64_t max) const {
    if (value <= 0) fail(key, "must be positive (got " + std::to_string(value) + ")");
    if (value > max) fail(key, "is implausibly large (" + std::to_string(value) + " > " + std::to_string(max) + ")");
    return value;
  }

 private:
  const json& obj_;
  const std::string& source_;
  std::string prefix_;
};

// transformers' torch dtype names (str(torch.dtype) without "torch.") and the short spellings.
std::optional<DType> parse_torch_dtype(std::string name) {
  if (name.rfind("torch.", 0) == 0) name = name.substr(6);
  if (name == "float8_e4m3fn") return DType::F8_E4M3;
  if (name == "float8_e5m2") return DType::F8_E5M2;
  if (name == "float64" || name == "double") return DType::F64;
  return parse_dtype(name);
}

// rope_scaling (classic) or rope_parameters (transformers 5): both use "rope_type" (legacy "type").
RopeScaling parse_rope(const json& obj, const std::string& source, const std::string& key) {
  if (!obj.is_object()) throw Error(source + ": key '" + key + "' must be an object (got " + show(obj) + ")");
  Keys k(obj, source, key + ".");
  RopeScaling r;
  std::string type = "default";
  if (auto t = k.opt_string("rope_type")) type = *t;
  else if (auto t2 = k.opt_string("type")) type = *t2;
  auto require_factor = [&]() {
    auto f = k.opt_double("factor");
    if (!f) k.fail("factor", "is required for rope type '" + type + "'");
    if (*f <= 0) k.fail("factor", "must be positive (got " + std::to_string(*f) + ")");
    return *f;
  };
  if (type == "default") {
    r.type = RopeType::Default;
  } else if (type == "linear") {
    r.type = RopeType::Linear;
    r.factor = require_factor();
  } else if (type == "llama3") {
    r.type = RopeType::Llama3;
    r.factor = require_factor();
    auto lo = k.opt_double("low_freq_factor"), hi = k.opt_double("high_freq_factor");
    auto orig = k.opt_int("original_max_position_embeddings");
    if (!lo) k.fail("low_freq_factor", "is required for rope type 'llama3'");
    if (!hi) k.fail("high_freq_factor", "is required for rope type 'llama3'");
    if (!orig) k.fail("original_max_position_embeddings", "is required for rope type 'llama3'");
    if (*lo <= 0) k.fail("low_freq_factor", "must be positive");
    if (*hi <= *lo) k.fail("high_freq_factor", "must be greater than low_freq_factor");
    r.low_freq_factor = *lo;
    r.high_freq_factor = *hi;
    r.original_max_position_embeddings = k.size_in_range("original_max_position_embeddings", *orig, kMaxPositions);
  } else {
    throw Error(source + ": rope type '" + show_str(type) + "' in '" + key + "' is not supported (supported: default, linear, llama3)");
  }
  return r;
}

}  // namespace

ModelConfig parse_model_config(const std::string& text, const std::string& source) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::parse_error& e) {
    throw Error(source + ": not valid JSON (parse error at byte " + std::to_string(e.byte) + ")");
  }
  if (!j.is_object()) throw Error(source + ": expected a JSON object, got " + std::string(j.type_name()));
  Keys k(j, source);
  ModelConfig c;

  // Architecture: architectures[0] when given, else the class model_type maps to.
  const ArchDefaults* arch = nullptr;
  auto model_type = k.opt_string("model_type");
  if (const json* archs = k.get("architectures")) {
    if (!archs->is_array() || archs->empty() || !(*archs)[0].is_string())
      k.fail("architectures", "must be a non-empty list of class names (got " + show(*archs) + ")");
    const auto& name = (*archs)[0].get_ref<const std::string&>();
    for (const auto& a : kArchs)
      if (name == a.architecture) arch = &a;
    if (!arch) throw Error(source + ": unsupported architecture '" + show_str(name) + "' (supported: " + supported_list() + ")");
  } else if (model_type) {
    for (const auto& a : kArchs)
      if (*model_type == a.model_type) arch = &a;
    if (!arch) throw Error(source + ": no 'architectures' and unsupported model_type '" + show_str(*model_type) +
                           "' (supported: llama, mistral, qwen2)");
  } else {
    throw Error(source + ": neither 'architectures' nor 'model_type' is set");
  }
  const std::string at = arch->model_type;
  c.architecture = arch->architecture;
  c.model_type = model_type.value_or(at);

  // Sizes.
  c.vocab_size = k.size_in_range("vocab_size", k.int_or("vocab_size", arch->vocab_size), kMaxDim);
  c.hidden_size = k.size_in_range("hidden_size", k.int_or("hidden_size", arch->hidden_size), kMaxDim);
  c.intermediate_size =
      k.size_in_range("intermediate_size", k.int_or("intermediate_size", arch->intermediate_size), kMaxDim);
  c.num_hidden_layers =
      k.size_in_range("num_hidden_layers", k.int_or("num_hidden_layers", arch->num_hidden_layers), kMaxDim);
  c.num_attention_heads =
      k.size_in_range("num_attention_heads", k.int_or("num_attention_heads", arch->num_attention_heads), kMaxDim);
  // Missing: the class default; null: as many as attention heads (what the classes do with None).
  int64_t kv_default = k.present("num_key_value_heads") || arch->num_key_value_heads == 0 ? c.num_attention_heads
                                                                                          : arch->num_key_value_heads;
  c.num_key_value_heads = k.size_in_range("num_key_value_heads", k.int_or("num_key_value_heads", kv_default), kMaxDim);
  if (c.num_attention_heads % c.num_key_value_heads != 0)
    k.fail("num_key_value_heads", "(" + std::to_string(c.num_key_value_heads) + ") must divide num_attention_heads (" +
                                      std::to_string(c.num_attention_heads) + ")");
  if (auto hd = k.opt_int("head_dim")) {
    c.head_dim = k.size_in_range("head_dim", *hd, kMaxDim);
  } else {
    if (c.hidden_size % c.num_attention_heads != 0)
      k.fail("hidden_size", "(" + std::to_string(c.hidden_size) + ") is not a multiple of num_attention_heads (" +
                                std::to_string(c.num_attention_heads) + ") and no head_dim is given");
    c.head_dim = c.hidden_size / c.num_attention_heads;
  }
  c.max_position_embeddings = k.size_in_range(
      "max_position_embeddings", k.int_or("max_position_embeddings", arch->max_position_embeddings), kMaxPositions);

  c.rms_norm_eps = k.double_or("rms_norm_eps", 1e-6);
  if (!(c.rms_norm_eps > 0)) k.fail("rms_norm_eps", "must be positive (got " + std::to_string(c.rms_norm_eps) + ")");

  // RoPE: transformers 5 keeps theta and scaling in rope_parameters; older files use rope_theta
  // and rope_scaling. rope_parameters wins when both are present.
  c.rope_theta = k.double_or("rope_theta", 10000.0);
  if (const json* rp = k.get("rope_parameters")) {
    c.rope_scaling = parse_rope(*rp, source, "rope_parameters");
    c.rope_theta = Keys(*rp, source, "rope_parameters.").double_or("rope_theta", c.rope_theta);
  } else if (const json* rs = k.get("rope_scaling")) {
    c.rope_scaling = parse_rope(*rs, source, "rope_scaling");
  }
  if (!(c.rope_theta > 0)) k.fail("rope_theta", "must be positive (got " + std::to_string(c.rope_theta) + ")");

  // Biases, as each transformers model class wires them.
  if (at == "llama") {
    c.attention_bias = c.o_proj_bias = k.bool_or("attention_bias", false);
    c.mlp_bias = k.bool_or("mlp_bias", false);
  } else if (at == "qwen2") {
    c.attention_bias = true;
  }
  c.tie_word_embeddings = k.bool_or("tie_word_embeddings", false);

  std::string act = k.opt_string("hidden_act").value_or("silu");
  if (act == "swish") act = "silu";
  if (act != "silu") k.fail("hidden_act", "is '" + show_str(act) + "'; only 'silu' is supported");
  c.hidden_act = act;

  const char* dtype_key = k.get("dtype") ? "dtype" : "torch_dtype";
  if (auto dt = k.opt_string(dtype_key)) {
    c.torch_dtype = parse_torch_dtype(*dt);
    if (!c.torch_dtype) k.fail(dtype_key, "names an unknown dtype '" + show_str(*dt) + "'");
  }

  // Sliding window (Mistral: all layers; Qwen2: only with use_sliding_window, from
  // max_window_layers on). A missing key takes the class default, null means none.
  if (at == "mistral" || at == "qwen2") {
    std::optional<int64_t> window;
    if (!k.present("sliding_window")) window = arch->sliding_window;
    else window = k.opt_int("sliding_window");
    if (window) k.size_in_range("sliding_window", *window, kMaxPositions);
    if (at == "qwen2") {
      if (!k.bool_or("use_sliding_window", false)) window.reset();
      c.sliding_window_first_layer = k.int_or("max_window_layers", 28);
      if (c.sliding_window_first_layer < 0) k.fail("max_window_layers", "must not be negative");
    }
    c.sliding_window = window;
  }
  // transformers 5 spells the per-layer choice out; it must agree with a suffix of sliding layers.
  if (const json* lt = k.get("layer_types")) {
    if (!lt->is_array() || int64_t(lt->size()) != c.num_hidden_layers)
      k.fail("layer_types", "must list one entry per layer (" + std::to_string(c.num_hidden_layers) + ")");
    int64_t first = c.num_hidden_layers;
    for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
      const json& e = (*lt)[size_t(i)];
      bool sliding = e == "sliding_attention";
      if (!sliding && e != "full_attention") k.fail("layer_types", "has unknown entry " + show(e));
      if (sliding && first == c.num_hidden_layers) first = i;
      if (!sliding && first < i) k.fail("layer_types", "mixes full and sliding layers in an unsupported pattern");
    }
    if (first == c.num_hidden_layers) c.sliding_window.reset();
    else if (!c.sliding_window) k.fail("layer_types", "has sliding layers but sliding_window is not set");
    else c.sliding_window_first_layer = first;
  }

  // Special tokens: an int, a list of ints, or null.
  c.bos_token_id = k.present("bos_token_id") ? k.int_or("bos_token_id", -1) : arch->bos_token_id;
  if (!k.present("eos_token_id")) {
    if (arch->eos_token_id >= 0) c.eos_token_ids.push_back(arch->eos_token_id);
  } else if (const json* eos = k.get("eos_token_id")) {
    if (eos->is_array()) {
      for (const auto& e : *eos) {
        if (!e.is_number_integer()) k.fail("eos_token_id", "must be an integer or a list of integers");
        c.eos_token_ids.push_back(e.get<int64_t>());
      }
    } else {
      c.eos_token_ids.push_back(k.int_or("eos_token_id", -1));
    }
  }
  // Ids past the vocabulary are tolerated (they are simply never sampled); negative ones are not.
  for (auto id : c.eos_token_ids)
    if (id < 0) k.fail("eos_token_id", "has negative id " + std::to_string(id));
  if (c.bos_token_id < -1) k.fail("bos_token_id", "is negative (" + std::to_string(c.bos_token_id) + ")");

  if (const json* q = k.get("quantization_config")) {
    if (!q->is_object()) k.fail("quantization_config", "must be an object (got " + show(*q) + ")");
    c.quantization_config_json = q->dump();
  }
  return c;
}

ModelConfig load_model_config(const std::filesystem::path& config_json) {
  std::ifstream f(config_json, std::ios::binary);
  if (!f) throw Error(config_json.string() + ": cannot read");
  std::stringstream ss;
  ss << f.rdbuf();
  return parse_model_config(ss.str(), config_json.string());
}

}  // namespace qforge
