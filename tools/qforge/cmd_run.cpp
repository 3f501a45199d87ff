// tools/qforge/cmd_run.cpp — `qforge run`: load a model, encode the prompt (or render the chat
// template around it with --chat), generate with the sampler chain and stream the text; --json
// prints the result contract as the last line.
#include <cstdio>
#include <iostream>

#include "command.h"
#include "memory_report.h"
#include "model_options.h"
#include "qforge/chat_template.h"
#include "qforge/generate.h"
#include "qforge/status.h"
#include "sampling_options.h"

namespace qforge::cli {
namespace {

struct RunArgs {
  ModelOptions m;
  SamplingArgs s;
  std::string prompt, system;
  bool chat = false, json = false, report_memory = false;
};

int run(const RunArgs& a) {
  if (a.prompt.empty()) throw Error("--prompt is required");
  if (!a.system.empty() && !a.chat) throw Error("--system needs --chat");
  const GpuMemoryBaseline gpu_base = a.report_memory ? gpu_memory_baseline(a.m.device) : GpuMemoryBaseline{};
  auto lm = load_model(a.m, true);
  Model& model = *lm.model;
  GenerateOptions g = make_generate_options(a.s, load_generation_defaults(model.dir(), model.config()));
  std::vector<int32_t> ids;
  if (a.chat) {
    nlohmann::json messages = nlohmann::json::array();
    if (!a.system.empty()) messages.push_back({{"role", "system"}, {"content", a.system}});
    messages.push_back({{"role", "user"}, {"content", a.prompt}});
    // As apply_chat_template(tokenize=True): the rendered text carries its own special tokens.
    ids = lm.tokenizer->encode(apply_chat_template(*lm.tokenizer, messages, true), false);
  } else {
    ids = lm.tokenizer->encode(a.prompt, true);
  }
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
    if (model.placement().size() > 1) std::fprintf(stderr, "[placement: %s]\n", placement_text(model).c_str());
    if (a.report_memory) print_memory_report(model, stdout, gpu_base);
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
  j["placement"] = placement_json(model);
  j["dtype"] = std::string(dtype_name(model.weight_dtype()));
  if (a.report_memory) {
    print_memory_report(model, stdout, gpu_base);
    j["memory"] = memory_json(model, gpu_base);
  }
  print_json(j);
  return 0;
}

Registrar reg("run", "Generate text from a prompt", [](CLI::App& app) {
  auto a = std::make_shared<RunArgs>();
  add_model_options(app, a->m, false);
  app.add_option("--prompt", a->prompt, "Prompt text (with --chat: the user message)");
  add_sampling_options(app, a->s);
  app.add_flag("--chat", a->chat, "Wrap the prompt in the model's chat template as one user message");
  app.add_option("--system", a->system, "With --chat: a system message before the user message");
  app.add_flag("--report-memory", a->report_memory, "Print measured memory by category");
  app.add_flag("--json", a->json, "Print one JSON object as the last line");
  return [a] { return run(*a); };
});

}  // namespace
}  // namespace qforge::cli
