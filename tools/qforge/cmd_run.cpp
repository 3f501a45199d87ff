// tools/qforge/cmd_run.cpp — `qforge run`: load a model, encode the prompt, generate with the
// sampler chain and stream the text; --json prints the result contract as the last line.
#include <cstdio>
#include <iostream>

#include "command.h"
#include "memory_report.h"
#include "model_options.h"
#include "qforge/generate.h"
#include "qforge/status.h"

namespace qforge::cli {
namespace {

struct RunArgs {
  ModelOptions m;
  std::string prompt;
  int64_t max_new_tokens = 128;
  bool greedy = false, ignore_eos = false, json = false, report_memory = false;
  std::optional<float> temperature, top_p, min_p, repetition_penalty;
  std::optional<int> top_k;
  uint64_t seed = 0;
};

SamplingParams pick_sampling(const RunArgs& a, const GenerationDefaults& d) {
  SamplingParams s;
  bool user_sampling = a.temperature || a.top_k || a.top_p || a.min_p;
  s.greedy = a.greedy || !(user_sampling || d.do_sample);
  s.temperature = a.temperature.value_or(d.temperature.value_or(1.0f));
  s.top_k = a.top_k.value_or(d.top_k.value_or(50));
  s.top_p = a.top_p.value_or(d.top_p.value_or(1.0f));
  s.min_p = a.min_p.value_or(d.min_p.value_or(0.0f));
  s.repetition_penalty = a.repetition_penalty.value_or(d.repetition_penalty.value_or(1.0f));
  s.seed = a.seed;
  return s;
}

int run(const RunArgs& a) {
  if (a.prompt.empty()) throw Error("--prompt is required");
  auto lm = load_model(a.m, true);
  Model& model = *lm.model;
  auto defaults = load_generation_defaults(model.dir(), model.config());
  GenerateOptions g;
  g.max_new_tokens = a.max_new_tokens;
  g.sampling = pick_sampling(a, defaults);
  g.ignore_eos = a.ignore_eos;
  g.eos_ids = defaults.eos_ids;
  auto ids = lm.tokenizer->encode(a.prompt, true);
  TokenCallback stream;
  if (!a.json)
    stream = [](int32_t, const std::string& piece) {
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::fflush(stdout);
    };
  auto r = generate(model, lm.tokenizer.get(), ids, g, stream);
  if (!a.json) {
    std::printf("\n");
    std::fprintf(stderr, "[%zu prompt tokens, %zu new, stop: %s; prefill %.1f tok/s, decode %.1f tok/s; %s on %s]\n",
                 r.prompt_ids.size(), r.new_ids.size(), r.stop_reason.c_str(), r.prefill_tokens_per_s(),
                 r.decode_tokens_per_s(), std::string(dtype_name(model.weight_dtype())).c_str(),
                 model.backend_name().c_str());
    if (a.report_memory) print_memory_report(model, stdout);
    return 0;
  }
  nlohmann::json j;
  j["prompt_ids"] = r.prompt_ids;
  j["new_ids"] = r.new_ids;
  j["text"] = r.text;
  j["stop_reason"] = r.stop_reason;
  j["timings"] = {{"prefill_tokens_per_s", r.prefill_tokens_per_s()},
                  {"decode_tokens_per_s", r.decode_tokens_per_s()},
                  {"prefill_seconds", r.prefill_seconds},
                  {"decode_seconds", r.decode_seconds},
                  {"load_seconds", lm.load_seconds}};
  j["device"] = model.backend_name();
  j["dtype"] = std::string(dtype_name(model.weight_dtype()));
  if (a.report_memory) {
    print_memory_report(model, stdout);
    j["memory"] = memory_json(model);
  }
  print_json(j);
  return 0;
}

Registrar reg("run", "Generate text from a prompt", [](CLI::App& app) {
  auto a = std::make_shared<RunArgs>();
  add_model_options(app, a->m, false);
  app.add_option("--prompt", a->prompt, "Prompt text");
  app.add_option("--max-new-tokens", a->max_new_tokens, "Tokens to generate at most")->capture_default_str();
  app.add_flag("--greedy", a->greedy, "Argmax decoding (default unless sampling flags or generation_config ask to sample)");
  app.add_option("--temperature", a->temperature, "Sampling temperature");
  app.add_option("--top-k", a->top_k, "Keep the k most likely tokens (default 50 as transformers; 0 = off)");
  app.add_option("--top-p", a->top_p, "Nucleus sampling: keep the smallest set with this probability");
  app.add_option("--min-p", a->min_p, "Drop tokens below min_p × the top probability");
  app.add_option("--repetition-penalty", a->repetition_penalty, "Penalise tokens already present (1 = off)");
  app.add_option("--seed", a->seed, "Random seed (same seed, same output)");
  app.add_flag("--ignore-eos", a->ignore_eos, "Do not stop at the EOS token(s)");
  app.add_flag("--report-memory", a->report_memory, "Print measured memory by category");
  app.add_flag("--json", a->json, "Print one JSON object as the last line");
  return [a] { return run(*a); };
});

}  // namespace
}  // namespace qforge::cli
