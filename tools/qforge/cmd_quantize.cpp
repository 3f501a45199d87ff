// tools/qforge/cmd_quantize.cpp — `qforge quantize`: writes a quantized checkpoint the ecosystem reads
// (bitsandbytes nf4/fp4/int8, compressed-tensors FP8, ModelOpt NVFP4, GPTQ int4) through
// write_quantized_checkpoint (src/quant/quant_checkpoint.h), atomically (temp dir + rename).
#include <chrono>
#include <cstdio>
#include <sstream>

#include "command.h"
#include "model/gguf_model.h"
#include "qforge/status.h"
#include "quant/quant_checkpoint.h"

namespace qforge::cli {
namespace {

struct QuantizeArgs {
  std::string model, random_weights, format, compute_dtype = "bf16", skip_modules = "lm_head", scale, out;
  int blocksize = 0;
  bool double_quant = false, symmetric = false, force = false, json = false;
  double max_shard_gb = 5.0;
};

// --out FILE.gguf: one GGUF file llama.cpp loads (model/gguf_model.h, docs/gguf.md).
int run_gguf(const QuantizeArgs& a) {
  if (a.model.empty() == a.random_weights.empty()) throw Error("give either --model or --random-weights");
  GgufWriteOptions o;
  o.format = a.format;
  o.force = a.force;
  const auto t0 = std::chrono::steady_clock::now();
  const auto s = a.model.empty() ? write_gguf_random(a.random_weights, a.out, o) : write_gguf_from_checkpoint(a.model, a.out, o);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  nlohmann::json j{{"out", a.out},       {"format", a.format},       {"serialization", "gguf"},
                   {"file_type", s.file_type}, {"tensors", s.tensors}, {"quantized_tensors", s.quantized},
                   {"fallback_tensors", s.fallback}, {"fallback_type", s.fallback_type}, {"tensor_types", s.by_type},
                   {"tensor_bytes", s.bytes}, {"seconds", secs}};
  if (a.json) {
    print_json(j);
  } else {
    std::string types;
    for (const auto& [t, n] : s.by_type) types += (types.empty() ? "" : ", ") + std::to_string(n) + " " + t;
    std::printf("wrote %s: GGUF %s, %lld tensors (2-D weights: %s)%s, %.1f MB, %.1f s\n", a.out.c_str(),
                a.format.c_str(), (long long)s.tensors, types.c_str(),
                s.fallback ? (", " + std::to_string(s.fallback) + " by row-length fallback to " + s.fallback_type).c_str() : "",
                double(s.bytes) / 1e6, secs);
  }
  return 0;
}

int run(const QuantizeArgs& a) {
  if (a.out.size() > 5 && is_gguf_path(a.out)) {
    if (a.format.empty()) throw Error("--format is required (q4_0, q4_1, q5_0, q5_1, q8_0, q2_k, q3_k, q4_k, q5_k, q6_k, q4_k_m, q5_k_m, f16, bf16, f32 for a .gguf --out)");
    return run_gguf(a);
  }
  if (!a.random_weights.empty()) throw Error("--random-weights applies to a .gguf --out only");
  if (a.model.empty()) throw Error("--model is required");
  if (a.format.empty()) throw Error("--format is required (nf4, fp4, int8, fp8, nvfp4, int4)");
  if (a.out.empty()) throw Error("--out is required");
  QuantizeCheckpointOptions o;
  auto f = parse_quant_format(a.format);
  if (!f) throw Error("--format: unknown format '" + a.format + "' (nf4, fp4, int8, fp8, nvfp4, int4)");
  o.format = *f;
  auto cd = parse_dtype(a.compute_dtype);
  if (!cd || (*cd != DType::F32 && *cd != DType::F16 && *cd != DType::BF16))
    throw Error("--compute-dtype: '" + a.compute_dtype + "' is not one of f32, f16, bf16");
  o.compute_dtype = *cd;
  if (a.blocksize < 0) throw Error("--blocksize must be positive");
  o.params.blocksize = a.blocksize;
  o.params.double_quant = a.double_quant;
  o.params.symmetric = a.symmetric;
  if (!a.scale.empty()) {
    if (a.scale == "per-channel" || a.scale == "channel") o.params.per_channel = true;
    else if (a.scale != "tensor" && a.scale != "per-tensor") throw Error("--scale must be 'tensor' or 'per-channel'");
  }
  o.skip_modules.clear();
  std::stringstream ss(a.skip_modules);
  for (std::string part; std::getline(ss, part, ',');)
    if (!part.empty()) o.skip_modules.push_back(part);
  if (!(a.max_shard_gb > 0)) throw Error("--max-shard-size must be > 0 (GB)");
  o.max_shard_bytes = uint64_t(a.max_shard_gb * 1e9);
  o.force = a.force;

  const auto t0 = std::chrono::steady_clock::now();
  const auto s = write_quantized_checkpoint(a.model, a.out, o);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  nlohmann::json j{{"out", a.out},
                   {"format", std::string(quant_traits(o.format).name)},
                   {"serialization", s.serialization},
                   {"quantized_modules", s.quantized_modules},
                   {"kept_modules", s.kept_modules},
                   {"tensor_bytes", s.tensor_bytes},
                   {"shards", s.shards},
                   {"copied_files", s.copied_files},
                   {"seconds", secs}};
  if (a.json) {
    print_json(j);
  } else {
    std::printf("wrote %s: %s (%s), %lld linear layers quantized, %lld kept in %s, %.1f MB in %d shard(s), %.1f s\n",
                a.out.c_str(), j["format"].get<std::string>().c_str(), s.serialization.c_str(),
                (long long)s.quantized_modules, (long long)s.kept_modules, a.compute_dtype.c_str(),
                double(s.tensor_bytes) / 1e6, s.shards, secs);
  }
  return 0;
}

Registrar reg("quantize", "Write a quantized checkpoint (bitsandbytes nf4/fp4/int8, FP8, NVFP4, GPTQ int4)",
              [](CLI::App& app) {
                auto a = std::make_shared<QuantizeArgs>();
                app.add_option("--model", a->model, "Model directory or Hugging Face repo id (local hub cache)");
                app.add_option("--format", a->format, "nf4, fp4, int8, fp8, nvfp4 or int4; for a .gguf --out: q4_0, q4_1, q5_0, q5_1, q8_0, q2_k, q3_k, q4_k, q5_k, q6_k, q4_k_m / q5_k_m (llama.cpp's mixes), f16, bf16, f32");
                app.add_option("--out", a->out, "Output directory (must not exist unless --force), or FILE.gguf");
                app.add_option("--random-weights", a->random_weights, "With a .gguf --out: random weights for this config.json (benchmarks)");
                app.add_option("--blocksize", a->blocksize, "nf4/fp4 block (power of two 32..4096, default 64); int4 group (32/64/128, default 128)");
                app.add_flag("--double-quant", a->double_quant, "nf4/fp4: quantize the absmax values too");
                app.add_option("--compute-dtype", a->compute_dtype, "dtype of unquantized tensors: bf16, f16 or f32")->capture_default_str();
                app.add_option("--skip-modules", a->skip_modules, "Comma-separated module name parts kept unquantized (must include lm_head)")->capture_default_str();
                app.add_option("--scale", a->scale, "fp8 scale granularity: tensor (default) or per-channel");
                app.add_flag("--symmetric", a->symmetric, "int4: symmetric (zero point 8)");
                app.add_option("--max-shard-size", a->max_shard_gb, "Largest shard in GB (decimal)")->capture_default_str();
                app.add_flag("--force", a->force, "Replace an existing --out directory");
                app.add_flag("--json", a->json, "Print one JSON object as the last line");
                return [a] { return run(*a); };
              });

}  // namespace
}  // namespace qforge::cli
