// tools/qforge/cmd_mem.cpp — `qforge mem`: how much memory a model needs in each weight format,
// and whether it fits the known devices (issue 5). Sources: --config FILE, --model PATH|REPO_ID,
// --preset NAME (built-in, offline) or --params 70B (quick formula). Human output is one table
// with formats as columns; --json prints the contract object for one --format on the last line.
#include <fmt/format.h>

#include <filesystem>
#include <memory>

#include "command.h"
#include "io/checkpoint.h"
#include "qforge/memory_estimate.h"
#include "qforge/model_config.h"
#include "qforge/status.h"

namespace qforge::cli {
namespace {

struct MemArgs {
  std::string config, model, preset, params;
  std::string format = "bf16";
  int64_t context = 0;  // 0 = min(4096, max_position_embeddings)
  int64_t batch = 1;
  int64_t prefill_chunk = kDefaultPrefillChunk;
  std::string kv_dtype = "bf16", compute_dtype = "bf16";
  std::string device_memory, device_kind = "cuda";
  bool json = false;
};

constexpr int64_t kDefaultContext = 4096;
constexpr int64_t kUnknownContextLimit = 1 << 20;  // search cap when the config gives no limit

std::string group_digits(int64_t v) {
  std::string s = std::to_string(v), out;
  const size_t lead = s.size() % 3 == 0 ? 3 : s.size() % 3;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i && (i - lead) % 3 == 0 && i >= lead) out += ',';
    out += s[i];
  }
  return out;
}

std::string lower(std::string s) {
  for (auto& ch : s) ch = char(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}

std::string gib(int64_t b) { return fmt::format("{:.2f}", double(b) / double(1LL << 30)); }

std::string_view kind_name(DeviceKind k) {
  switch (k) {
    case DeviceKind::Cuda: return "cuda";
    case DeviceKind::CudaUnified: return "cuda-unified";
    case DeviceKind::Cpu: return "cpu";
  }
  return "?";
}

DType parse_flag_dtype(const std::string& s, const char* flag, std::initializer_list<DType> allowed) {
  const std::string l = lower(s);
  std::optional<DType> d = (l == "fp8" || l == "f8" || l == "e4m3") ? std::optional(DType::F8_E4M3) : parse_dtype(l);
  if (d)
    for (DType a : allowed)
      if (a == *d) return a;
  std::string names;
  for (DType a : allowed) names += (names.empty() ? "" : ", ") + std::string(a == DType::F8_E4M3 ? "fp8" : dtype_name(a));
  throw Error(std::string(flag) + ": '" + s + "' is not one of " + names);
}

// One column of the table: a weight scheme and its estimate on a CUDA device, plus per-device
// verdicts (each device with its own overheads).
struct DeviceResult {
  DeviceSpec device;
  int64_t total_bytes = 0;
  bool fits = false;
  int64_t max_context = 0;
};
struct Column {
  WeightScheme scheme;
  MemoryEstimate est;  // on a CUDA device
  std::vector<DeviceResult> devices;
};

// The source model: a config, or the --params quick model (shape borrowed from a preset).
struct Source {
  std::string name, origin;
  ModelConfig config;
  std::optional<int64_t> quick_params;  // set in --params mode
  std::string shape_from;
};

Source load_source(const MemArgs& a) {
  const int given = !a.config.empty() + !a.model.empty() + !a.preset.empty() + !a.params.empty();
  if (given != 1) throw Error("qforge mem: give exactly one of --config, --model, --preset, --params");
  Source s;
  if (!a.config.empty()) {
    s.config = load_model_config(a.config);
    s.name = std::filesystem::path(a.config).parent_path().filename().string();
    if (s.name.empty()) s.name = a.config;
    s.origin = a.config;
  } else if (!a.model.empty()) {
    const std::filesystem::path dir =
        std::filesystem::is_directory(a.model) ? std::filesystem::path(a.model) : io::resolve_model_dir(a.model);
    s.config = load_model_config(dir / "config.json");
    s.name = a.model;
    s.origin = (dir / "config.json").string();
  } else if (!a.preset.empty()) {
    auto c = preset_config(a.preset);
    if (!c) {
      std::string names;
      for (const auto& n : preset_names()) names += (names.empty() ? "" : ", ") + n;
      throw Error("--preset: unknown model '" + a.preset + "' (known: " + names + ")");
    }
    s.config = *c;
    s.name = a.preset;
    for (const auto& n : preset_names())  // print the canonical spelling
      if (lower(n) == lower(a.preset)) s.name = n;
    s.origin = "built-in preset";
  } else {
    const int64_t p = parse_param_count(a.params, "--params");
    s.quick_params = p;
    s.name = a.params + " parameters";
    s.origin = "quick formula";
  }
  return s;
}

WeightScheme scheme_or_throw(const std::string& name) {
  auto s = parse_weight_scheme(name);
  if (!s) {
    std::string names;
    for (const auto& n : weight_scheme_names()) names += (names.empty() ? "" : ", ") + n;
    throw Error("--format: unknown format '" + name + "' (known: " + names + ")");
  }
  return *s;
}

Column evaluate(const Source& src, const MemoryOptions& base, const WeightScheme& scheme,
                const std::vector<DeviceSpec>& devices, int64_t context_limit) {
  MemoryOptions o = base;
  o.scheme = scheme;
  Column col;
  col.scheme = scheme;
  // total(context, kind): exact from the config, or quick weights + the borrowed shape's KV/overhead.
  int64_t quick_weights = 0;
  ModelConfig cfg = src.config;
  if (src.quick_params) {
    QuickEstimate q = quick_estimate(*src.quick_params, scheme);
    quick_weights = q.weights_bytes;
    cfg = q.shape;
  }
  auto estimate = [&](int64_t context, DeviceKind kind) {
    MemoryOptions t = o;
    t.context = context;
    MemoryEstimate e = estimate_memory(cfg, t, kind);
    if (src.quick_params) {
      e.params = ParamCounts{};
      e.weights_bytes = quick_weights;
      std::vector<std::pair<std::string, int64_t>> bd = {{"weights", quick_weights}};
      for (auto& kv : e.breakdown)
        if (kv.first == "kv_cache" || kv.first == "cuda_context" || kv.first == "cublas_workspace" ||
            kv.first == "activation_scratch")
          bd.push_back(kv);
      e.breakdown = bd;
      e.total_bytes = e.weights_bytes + e.kv_cache_bytes + e.overhead_bytes;
    }
    return e;
  };
  col.est = estimate(o.context, DeviceKind::Cuda);
  for (const auto& d : devices) {
    DeviceResult r;
    r.device = d;
    r.total_bytes = estimate(o.context, d.kind).total_bytes;
    r.fits = r.total_bytes <= d.memory_bytes;
    r.max_context = largest_fitting_context(
        [&](int64_t n) { return estimate(n, d.kind).total_bytes; }, d.memory_bytes, context_limit);
    col.devices.push_back(r);
  }
  return col;
}

nlohmann::json to_json(const Source& src, const MemoryOptions& o, const Column& c, int64_t context_limit) {
  nlohmann::json j;
  j["model"] = src.name;
  j["source"] = src.origin;
  if (!src.quick_params) j["architecture"] = src.config.architecture;
  j["format"] = c.scheme.name;
  j["format_description"] = std::string(c.scheme.description);
  j["compute_dtype"] = std::string(dtype_name(o.compute_dtype));
  j["kv_dtype"] = o.kv_dtype == DType::F8_E4M3 ? "fp8" : std::string(dtype_name(o.kv_dtype));
  j["context"] = o.context;
  j["batch"] = o.batch;
  j["prefill_chunk"] = o.prefill_chunk;
  j["context_limit"] = context_limit;
  if (src.quick_params) {
    j["params"] = *src.quick_params;
    j["quick"] = true;
    j["bits_per_weight"] = analytic_bits_per_weight(c.scheme);
    j["shape_from"] = src.shape_from;
  } else {
    const ParamCounts& p = c.est.params;
    j["params"] = p.total();
    j["params_breakdown"] = {{"embeddings", p.embeddings}, {"attention", p.attention},
                             {"attention_biases", p.attention_biases}, {"mlp", p.mlp},
                             {"mlp_biases", p.mlp_biases}, {"norms", p.norms}, {"lm_head", p.lm_head}};
  }
  j["weights_bytes"] = c.est.weights_bytes;
  j["kv_cache_bytes"] = c.est.kv_cache_bytes;
  j["overhead_bytes"] = c.est.overhead_bytes;
  j["total_bytes"] = c.est.total_bytes;
  j["device_kind"] = "cuda";
  nlohmann::json bd = nlohmann::json::object();
  for (const auto& [k, v] : c.est.breakdown) bd[k] = v;
  j["breakdown"] = bd;
  j["overhead_source"] =
      "cuda_context 500 MiB and cublas_workspace 32 MiB: measured on H100 with CUDA 13, to be refined; "
      "activation_scratch computed; CPU devices have no CUDA context or workspace";
  nlohmann::json devs = nlohmann::json::array();
  for (const auto& r : c.devices)
    devs.push_back({{"name", r.device.name}, {"memory_bytes", r.device.memory_bytes},
                    {"kind", kind_name(r.device.kind)}, {"total_bytes", r.total_bytes}, {"fits", r.fits},
                    {"max_context", r.max_context}, {"note", r.device.note}});
  j["devices"] = devs;
  return j;
}

void print_human(const Source& src, const MemoryOptions& o, const std::vector<Column>& cols,
                 int64_t context_limit) {
  std::printf("Model: %s (%s)\n", src.name.c_str(), src.origin.c_str());
  if (src.quick_params) {
    std::printf("Parameters: %s (given)\n", group_digits(*src.quick_params).c_str());
    const ModelConfig& s = src.config;  // the borrowed shape
    std::printf("Quick formula assumptions:\n");
    std::printf("  - weights = params x bits per weight of the format / 8 (every parameter priced at the format's\n"
                "    large-matrix rate; a real model keeps embeddings, norms and lm_head in bf16, so it needs more)\n");
    std::printf("  - KV cache and scratch use the shape of preset %s (%lld layers, %lld KV heads x %lld, hidden %lld)\n",
                src.shape_from.c_str(), (long long)s.num_hidden_layers, (long long)s.num_key_value_heads,
                (long long)s.head_dim, (long long)s.hidden_size);
  } else {
    const ModelConfig& c = src.config;
    const ParamCounts& p = cols.front().est.params;
    std::printf("Architecture: %s: vocab %lld, hidden %lld, intermediate %lld, %lld layers, %lld heads, %lld KV heads x %lld%s%s\n",
                c.architecture.c_str(), (long long)c.vocab_size, (long long)c.hidden_size,
                (long long)c.intermediate_size, (long long)c.num_hidden_layers, (long long)c.num_attention_heads,
                (long long)c.num_key_value_heads, (long long)c.head_dim,
                c.tie_word_embeddings ? ", tied embeddings" : "", c.attention_bias ? ", q/k/v biases" : "");
    std::printf("Parameters: %s\n", group_digits(p.total()).c_str());
    const std::pair<const char*, int64_t> rows[] = {
        {"embeddings", p.embeddings}, {"attention", p.attention}, {"attention biases", p.attention_biases},
        {"mlp", p.mlp}, {"mlp biases", p.mlp_biases}, {"norms", p.norms}, {"lm_head", p.lm_head}};
    for (const auto& [k, v] : rows)
      if (v || std::string_view(k) == "lm_head")
        std::printf("  %-18s %18s%s\n", k, group_digits(v).c_str(),
                    (std::string_view(k) == "lm_head" && !v) ? "  (tied: shares the embeddings)" : "");
  }
  std::printf("\nContext %lld x batch %lld, KV cache %s, unquantized modules in %s (GiB = 2^30 bytes)\n",
              (long long)o.context, (long long)o.batch,
              o.kv_dtype == DType::F8_E4M3 ? "fp8" : std::string(dtype_name(o.kv_dtype)).c_str(),
              std::string(dtype_name(o.compute_dtype)).c_str());
  const int label_w = 28, col_w = 11;
  auto header = [&](const char* title) {
    std::printf("%-*s", label_w, title);
    for (const auto& c : cols) std::printf("%*s", col_w, c.scheme.name == "bf16" ? "fp16/bf16" : c.scheme.name.c_str());
    std::printf("\n");
  };
  header("GiB on a CUDA GPU");
  auto row = [&](const char* label, auto value) {
    std::printf("%-*s", label_w, label);
    for (const auto& c : cols) std::printf("%*s", col_w, value(c).c_str());
    std::printf("\n");
  };
  row("bits per parameter", [&](const Column& c) {
    const int64_t n = src.quick_params ? *src.quick_params : c.est.params.total();
    return fmt::format("{:.3f}", 8.0 * double(c.est.weights_bytes) / double(n));
  });
  row("weights", [](const Column& c) { return gib(c.est.weights_bytes); });
  row("kv cache", [](const Column& c) { return gib(c.est.kv_cache_bytes); });
  row("overhead", [](const Column& c) { return gib(c.est.overhead_bytes); });
  row("total", [](const Column& c) { return gib(c.est.total_bytes); });
  row("total, GB (10^9 bytes)", [](const Column& c) { return fmt::format("{:.2f}", double(c.est.total_bytes) / 1e9); });
  std::printf("\nFits at context %lld?\n", (long long)o.context);
  for (size_t d = 0; d < cols.front().devices.size(); ++d) {
    const auto& dev = cols.front().devices[d].device;
    std::string label = fmt::format("{} ({} GiB)", dev.name, gib(dev.memory_bytes));
    row(label.c_str(), [d](const Column& c) { return std::string(c.devices[d].fits ? "yes" : "NO"); });
  }
  std::printf("\nLargest context that fits (model limit %lld; 0 = weights alone do not fit)\n", (long long)context_limit);
  for (size_t d = 0; d < cols.front().devices.size(); ++d) {
    const auto& dev = cols.front().devices[d].device;
    row(dev.name.c_str(), [d](const Column& c) { return std::to_string(c.devices[d].max_context); });
  }
  std::printf("\nOverhead = CUDA context 500 MiB + cuBLAS workspace 32 MiB (measured on H100 with CUDA 13; to be\n"
              "refined) + activation scratch batch x min(context, %lld) x (4 hidden + 2 intermediate + vocab) x 4 B.\n"
              "CPU devices (laptops) have no CUDA context or workspace; their totals differ from the GiB rows above.\n",
              (long long)o.prefill_chunk);
}

Registrar reg("mem", "Estimate memory per weight format and whether the model fits known devices", [](CLI::App& app) {
  auto a = std::make_shared<MemArgs>();
  app.add_option("--config", a->config, "A config.json file");
  app.add_option("--model", a->model, "A model directory or a Hugging Face repo id in the local hub cache");
  app.add_option("--preset", a->preset, "A built-in config (see --list-presets), works offline");
  app.add_option("--params", a->params, "Quick formula from a parameter count, e.g. 70B");
  app.add_option("--format", a->format, "Weight format for --json and the extra column (default bf16)");
  app.add_option("--context", a->context, "Tokens per sequence (default min(4096, max_position_embeddings))");
  app.add_option("--batch", a->batch, "Sequences (default 1)");
  app.add_option("--kv-dtype", a->kv_dtype, "KV cache element type: bf16, f16, fp8, f32 (default bf16)");
  app.add_option("--compute-dtype", a->compute_dtype, "dtype of unquantized modules: bf16, f16, f32 (default bf16)");
  app.add_option("--prefill-chunk", a->prefill_chunk, "Prefill tokens per step for the scratch estimate (default 512)");
  app.add_option("--device-memory", a->device_memory, "Add a device with this much memory, e.g. 24GiB");
  app.add_option("--device-kind", a->device_kind, "Kind of the --device-memory device: cuda or cpu (default cuda)");
  auto list = std::make_shared<bool>(false);
  app.add_flag("--list-presets", *list, "List the built-in configs and formats");
  app.add_flag("--json", a->json, "Print one JSON object (for --format) on the last stdout line");
  return [a, list]() -> int {
    if (*list) {
      for (const auto& n : preset_names()) std::printf("%s\n", n.c_str());
      std::printf("formats:");
      for (const auto& n : weight_scheme_names()) std::printf(" %s", n.c_str());
      std::printf("\n");
      return 0;
    }
    Source src = load_source(*a);
    if (src.quick_params) {  // KV cache / scratch / context limit come from the nearest preset
      QuickEstimate q = quick_estimate(*src.quick_params, scheme_or_throw("bf16"));
      src.shape_from = q.shape_from;
      src.config = q.shape;
    }
    validate_for_estimate(src.config);
    MemoryOptions o;
    o.scheme = scheme_or_throw(a->format);
    o.compute_dtype = parse_flag_dtype(a->compute_dtype, "--compute-dtype", {DType::BF16, DType::F16, DType::F32});
    o.kv_dtype = parse_flag_dtype(a->kv_dtype, "--kv-dtype", {DType::BF16, DType::F16, DType::F8_E4M3, DType::F32});
    const int64_t model_limit = src.config.max_position_embeddings;
    if (a->context < 0) throw Error("--context must be positive (got " + std::to_string(a->context) + ")");
    o.context = a->context ? a->context : (model_limit > 0 ? std::min(kDefaultContext, model_limit) : kDefaultContext);
    o.batch = a->batch;
    o.prefill_chunk = a->prefill_chunk;
    const int64_t context_limit = std::max(model_limit > 0 ? model_limit : kUnknownContextLimit, o.context);

    std::vector<DeviceSpec> devices = known_devices();
    if (!a->device_memory.empty()) {
      DeviceSpec d;
      d.memory_bytes = parse_byte_size(a->device_memory, "--device-memory");
      if (a->device_kind == "cuda") d.kind = DeviceKind::Cuda;
      else if (a->device_kind == "cpu") d.kind = DeviceKind::Cpu;
      else throw Error("--device-kind: '" + a->device_kind + "' is not cuda or cpu");
      d.name = "--device-memory " + a->device_memory;
      d.note = "given on the command line";
      devices.push_back(d);
    }

    if (a->json) {
      print_json(to_json(src, o, evaluate(src, o, o.scheme, devices, context_limit), context_limit));
      return 0;
    }
    std::vector<Column> cols;
    bool have_selected = false;
    for (const auto& s : table_weight_schemes()) {
      have_selected |= s.name == o.scheme.name;
      cols.push_back(evaluate(src, o, s, devices, context_limit));
    }
    if (!have_selected) cols.push_back(evaluate(src, o, o.scheme, devices, context_limit));
    print_human(src, o, cols, context_limit);
    return 0;
  };
});

}  // namespace
}  // namespace qforge::cli
