// tools/qforge/cmd_bench.cpp — `qforge bench`: prefill and decode speed of a model (or a
// random-weight model of any config), with achieved GB/s against the bandwidth measured in the
// same run (the decode roofline: weight bytes read per token ÷ bandwidth).
#include <chrono>
#include <cstdio>
#include <random>

#include "backends/gpu_info.h"
#include "command.h"
#include "model_options.h"
#include "qforge/bandwidth.h"
#include "qforge/generate.h"
#include "qforge/memory.h"
#include "qforge/status.h"

namespace qforge::cli {
namespace {

struct BenchArgs {
  ModelOptions m;
  int64_t prompt_len = 512, gen = 128, batch = 1;
  int repeats = 1;
  bool json = false, no_bandwidth = false;
};

int run(const BenchArgs& a) {
  if (a.batch != 1) throw Error("--batch: only batch 1 is implemented so far");
  if (a.prompt_len < 1 || a.gen < 1) throw Error("--prompt-len and --gen must be >= 1");
  auto lm = load_model(a.m, false);
  Model& m = *lm.model;
  const auto& c = m.config();
  if (a.prompt_len + a.gen > c.max_position_embeddings)
    throw Error("--prompt-len + --gen exceeds max_position_embeddings (" + std::to_string(c.max_position_embeddings) + ")");
  std::mt19937 rng(123);
  std::vector<int32_t> prompt(size_t(a.prompt_len));
  for (auto& t : prompt) t = int32_t(rng() % uint32_t(c.vocab_size));
  m.reserve_context(a.prompt_len + a.gen);
  // Warm-up at full size: the prefill path (GEMM algorithms, first-use kernel loads) and a few
  // decode steps (CUDA graph capture) stay out of the timed runs.
  m.forward(prompt, 0);
  for (int64_t i = 0; i < std::min<int64_t>(3, a.gen); ++i) m.forward(std::span(prompt).subspan(size_t(i), 1), a.prompt_len + i);
  double best_prefill = 0, best_decode = 0;
  for (int r = 0; r < std::max(1, a.repeats); ++r) {
    GenerateOptions g;
    g.max_new_tokens = a.gen + 1;  // the first token comes from the prefill
    g.ignore_eos = true;
    auto res = generate(m, nullptr, prompt, g);
    best_prefill = std::max(best_prefill, res.prefill_tokens_per_s());
    best_decode = std::max(best_decode, res.decode_tokens_per_s());
  }
  double bytes_per_token = double(m.decode_bytes_per_token());
  // The bandwidth of the memory the weights live in: device-to-device copy on a GPU (bytes read +
  // written), multi-threaded read on the host.
  const bool on_gpu = m.backend_name().rfind("cuda", 0) == 0 && m.placement().size() == 1;
  const int gpu = on_gpu ? std::stoi(m.placement()[0].device.substr(5)) : 0;  // placement names "cuda:N"
  double bw = a.no_bandwidth ? 0 : on_gpu ? measure_gpu_copy_bandwidth(gpu) : measure_host_read_bandwidth();
  double achieved = bytes_per_token * best_decode / 1e9;
  nlohmann::json j{{"device", m.backend_name()},
                   {"placement", placement_json(m)},
                   {"dtype", std::string(dtype_name(m.weight_dtype()))},
                   {"quant", a.m.quant.empty() ? "none" : a.m.quant},
                   {"threads", a.m.threads},
                   {"prompt_len", a.prompt_len},
                   {"gen", a.gen},
                   {"batch", a.batch},
                   {"prefill_tokens_per_s", best_prefill},
                   {"decode_tokens_per_s", best_decode},
                   {"ms_per_token", best_decode > 0 ? 1000.0 / best_decode : 0},
                   {"weight_bytes", m.weight_bytes()},
                   {"weight_bytes_per_token", bytes_per_token},
                   {"achieved_gb_per_s", achieved},
                   {"bandwidth_gb_per_s", bw},
                   {"bandwidth_kind", on_gpu ? "gpu device-to-device copy" : "host multi-threaded read"},
                   {"roofline_fraction", bw > 0 ? achieved / bw : 0},
                   {"peak_memory_bytes", process_peak_rss_bytes()}};
  // GPU memory qforge allocated at its peak (weights, KV cache, scratch; every GPU of a split together).
  if (m.backend_name().find("cuda") != std::string::npos)
    j["peak_gpu_accounted_bytes"] = MemoryAccounting::device_total(MemDevice::Cuda0).peak;
  if (a.json) {
    print_json(j);
  } else {
    std::printf("%s %s%s on %s: prefill %.1f tok/s (%lld tokens), decode %.2f tok/s = %.2f ms/token\n",
                a.m.model.empty() ? a.m.random_weights.c_str() : a.m.model.c_str(),
                std::string(dtype_name(m.weight_dtype())).c_str(), a.m.quant.empty() ? "" : (" " + a.m.quant).c_str(),
                m.backend_name().c_str(), best_prefill, (long long)a.prompt_len, best_decode, 1000.0 / best_decode);
    std::printf("decode reads %.1f MB of weights per token: %.2f GB/s achieved", bytes_per_token / 1e6, achieved);
    if (bw > 0) std::printf(" of %.2f GB/s measured (%.0f%% of the roofline)", bw, 100 * achieved / bw);
    std::printf("\npeak RSS %.1f MiB", double(process_peak_rss_bytes()) / (1 << 20));
    if (j.contains("peak_gpu_accounted_bytes"))
      std::printf(", GPU peak %.1f MiB (qforge's allocations)", double(j["peak_gpu_accounted_bytes"].get<int64_t>()) / (1 << 20));
    std::printf("\n");
  }
  return 0;
}

Registrar reg("bench", "Prefill/decode speed with achieved bandwidth and roofline fraction", [](CLI::App& app) {
  auto a = std::make_shared<BenchArgs>();
  add_model_options(app, a->m, true);
  app.add_option("--prompt-len", a->prompt_len, "Prompt tokens (random ids)")->capture_default_str();
  app.add_option("--gen", a->gen, "Decode steps timed")->capture_default_str();
  app.add_option("--batch", a->batch, "Sequences per step")->capture_default_str();
  app.add_option("--repeats", a->repeats, "Runs; the best is reported")->capture_default_str();
  app.add_flag("--no-bandwidth", a->no_bandwidth, "Skip the bandwidth measurement");
  app.add_flag("--json", a->json, "Print one JSON object as the last line");
  return [a] { return run(*a); };
});

}  // namespace
}  // namespace qforge::cli
