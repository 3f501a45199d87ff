// tools/qforge/model_options.cpp — see model_options.h.
#include "model_options.h"

#include <chrono>
#include <fstream>
#include <sstream>

#include "io/checkpoint.h"
#include "model/gguf_model.h"
#include "qforge/status.h"

namespace qforge::cli {

void add_model_options(CLI::App& app, ModelOptions& o, bool allow_random, bool with_quant) {
  app.add_option("--model", o.model, "Model directory or Hugging Face repo id (local hub cache)");
  if (allow_random)
    app.add_option("--random-weights", o.random_weights, "config.json of a model to build with random weights");
  app.add_option("--dtype", o.dtype, "How weights are held: f32, f16 or bf16 (default: the checkpoint's dtype)");
  app.add_option("--device", o.device, "auto, cpu, ref (scalar reference), cuda, cuda:N, or a list to split over (cuda:0,cpu)")
      ->capture_default_str();
  app.add_option("--max-memory", o.max_memory, "Per-device budgets for placement, e.g. cuda:0=20GiB,cpu=64GiB");
  app.add_option("--threads", o.threads, "CPU threads (default: all cores)");
  if (with_quant) {
    app.add_option("--quant", o.quant, "Quantize linear layers at load: nf4, fp4, int8, fp8, fp8-e5m2, nvfp4, mxfp4, int4, q4_0, q8_0, q4_k");
    app.add_option("--blocksize", o.blocksize, "Quantization block/group size (default: the format's)");
    app.add_flag("--double-quant", o.double_quant, "nf4/fp4: quantize the absmax values too (bitsandbytes double quant)");
    app.add_flag("--symmetric", o.symmetric, "int4: symmetric (no zero point)");
    app.add_option("--scale", o.scale, "fp8 scale granularity: tensor (default) or per-channel");
    app.add_option("--compute-dtype", o.compute_dtype, "dtype of modules kept unquantized: bf16, f16 or f32");
    app.add_option("--skip-modules", o.skip_modules, "Comma-separated module name parts kept unquantized")->capture_default_str();
  }
}

static DType parse_float_dtype(const std::string& s, const char* flag) {
  auto d = parse_dtype(s);
  if (!d || (*d != DType::F32 && *d != DType::F16 && *d != DType::BF16))
    throw Error(std::string(flag) + ": '" + s + "' is not one of f32, f16, bf16");
  return *d;
}

LoadOptions to_load_options(const ModelOptions& o) {
  LoadOptions L;
  if (!o.dtype.empty()) L.dtype = parse_float_dtype(o.dtype, "--dtype");
  if (!o.compute_dtype.empty()) L.compute_dtype = parse_float_dtype(o.compute_dtype, "--compute-dtype");
  L.device = o.device;
  L.max_memory = o.max_memory;
  if (o.threads < 0) throw Error("--threads must be >= 0");
  L.threads = o.threads;
  if (!o.quant.empty()) {
    auto f = parse_quant_format(o.quant);
    if (!f) throw Error("--quant: unknown format '" + o.quant + "' (see `qforge dtypes`)");
    L.quant = *f;
  }
  L.quant_params.blocksize = o.blocksize;
  L.quant_params.double_quant = o.double_quant;
  L.quant_params.symmetric = o.symmetric;
  if (!o.scale.empty()) {
    if (o.scale == "per-channel" || o.scale == "channel") L.quant_params.per_channel = true;
    else if (o.scale != "tensor" && o.scale != "per-tensor") throw Error("--scale must be 'tensor' or 'per-channel'");
  }
  L.skip_modules.clear();
  std::stringstream ss(o.skip_modules);
  for (std::string part; std::getline(ss, part, ',');)
    if (!part.empty()) L.skip_modules.push_back(part);
  return L;
}

LoadedModel load_model(const ModelOptions& o, bool need_tokenizer) {
  LoadedModel lm;
  auto t0 = std::chrono::steady_clock::now();
  LoadOptions L = to_load_options(o);
  if (!o.random_weights.empty()) {
    if (!o.model.empty()) throw Error("give either --model or --random-weights, not both");
    if (!std::filesystem::exists(o.random_weights)) throw Error(o.random_weights + ": no such file");
    auto cfg = load_model_config(o.random_weights);
    lm.model = Model::random(cfg, L, o.seed_weights);
  } else {
    if (o.model.empty()) throw Error("--model is required");
    lm.model = Model::load(o.model, L);
    if (need_tokenizer)  // a .gguf carries its tokenizer in its metadata (model/gguf_model.h)
      lm.tokenizer = is_gguf_path(o.model) ? load_gguf_tokenizer(o.model) : Tokenizer::load(lm.model->dir());
  }
  lm.load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return lm;
}

nlohmann::json placement_json(const Model& m) {
  nlohmann::json j = nlohmann::json::array();
  for (const auto& p : m.placement())
    j.push_back({{"device", p.device}, {"layers", {p.layer_begin, p.layer_end}}, {"embed", p.embed}, {"lm_head", p.head},
                 {"bytes", p.bytes}});
  return j;
}

std::string placement_text(const Model& m) {
  std::string t;
  for (const auto& p : m.placement()) {
    std::string parts;
    if (p.embed) parts += "embed";
    if (p.layer_end > p.layer_begin)
      parts += (parts.empty() ? "" : " + ") + std::string("layers ") + std::to_string(p.layer_begin) + "-" +
               std::to_string(p.layer_end - 1);
    if (p.head) parts += (parts.empty() ? "" : " + ") + std::string("lm_head");
    t += (t.empty() ? "" : "; ") + p.device + ": " + parts;
  }
  return t;
}

std::vector<int32_t> parse_id_list(const std::string& s, const std::string& flag) {
  std::vector<int32_t> ids;
  std::stringstream ss(s);
  for (std::string part; std::getline(ss, part, ',');) {
    size_t pos = 0;
    long long v = 0;
    try {
      v = std::stoll(part, &pos);
    } catch (...) {
      pos = 0;
    }
    if (pos == 0 || pos != part.size() || v < 0 || v > INT32_MAX)
      throw Error(flag + ": '" + part + "' is not a token id");
    ids.push_back(int32_t(v));
  }
  return ids;
}

}  // namespace qforge::cli
