// tools/qforge/cmd_random_model.cpp — `qforge random-model`: writes a Hugging Face-layout checkpoint
// with random weights (N(0, 0.02), norms 1) for any config.json, so that benchmarks of loading,
// quantizing and converting large shapes need no download. Written atomically (temp dir + rename).
#include <random>
#include <unistd.h>

#include "command.h"
#include "io/safetensors.h"
#include "qforge/model_config.h"
#include "qforge/status.h"

namespace qforge {
std::vector<std::pair<std::string, Tensor>> random_checkpoint_tensors(const ModelConfig& c, DType dt, uint64_t seed);
}

namespace qforge::cli {
namespace {

struct RandomArgs {
  std::string config, out, dtype = "bf16", tokenizer_from;
  uint64_t seed = 1;
  bool json = false;
};

int run(const RandomArgs& a) {
  namespace fs = std::filesystem;
  if (a.config.empty() || a.out.empty()) throw Error("--config and --out are required");
  if (!fs::is_regular_file(a.config)) throw Error(a.config + ": no such file");
  if (fs::exists(a.out)) throw Error(a.out + ": already exists");
  auto dt = parse_dtype(a.dtype);
  if (!dt || (*dt != DType::F32 && *dt != DType::F16 && *dt != DType::BF16)) throw Error("--dtype must be f32, f16 or bf16");
  ModelConfig cfg = load_model_config(a.config);
  fs::path tmp = a.out + ".tmp-" + std::to_string(getpid());
  std::error_code ec;
  try {
    fs::create_directories(tmp);
    fs::copy_file(a.config, tmp / "config.json");
    if (!a.tokenizer_from.empty())
      for (const char* f : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"})
        if (fs::exists(fs::path(a.tokenizer_from) / f)) fs::copy_file(fs::path(a.tokenizer_from) / f, tmp / f);
    auto tensors = random_checkpoint_tensors(cfg, *dt, a.seed);
    std::vector<io::TensorToWrite> w;
    for (auto& [name, t] : tensors) w.push_back({name, t.dtype(), t.shape(), t.raw(), t.nbytes()});
    io::write_safetensors(tmp / "model.safetensors", w, {{"format", "pt"}, {"qforge.random_seed", std::to_string(a.seed)}});
    fs::rename(tmp, a.out);
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
  if (a.json) print_json({{"out", a.out}, {"dtype", a.dtype}, {"seed", a.seed}});
  else std::printf("wrote a random %s checkpoint of %s to %s\n", a.dtype.c_str(), a.config.c_str(), a.out.c_str());
  return 0;
}

Registrar reg("random-model", "Write a checkpoint with random weights for a config.json (benchmarks)", [](CLI::App& app) {
  auto a = std::make_shared<RandomArgs>();
  app.add_option("--config", a->config, "config.json of the model shape");
  app.add_option("--out", a->out, "Output directory (must not exist)");
  app.add_option("--dtype", a->dtype, "f32, f16 or bf16")->capture_default_str();
  app.add_option("--seed", a->seed, "Random seed")->capture_default_str();
  app.add_option("--tokenizer-from", a->tokenizer_from, "Copy tokenizer/generation files from this model directory");
  app.add_flag("--json", a->json, "Print one JSON object as the last line");
  return [a] { return run(*a); };
});

}  // namespace
}  // namespace qforge::cli
