// tools/qforge/cmd_chat.cpp — `qforge chat`: interactive multi-turn chat in the model's own chat
// template, streaming each reply. The KV cache is reused across turns: only the tokens after the
// longest common prefix with what is already cached are run. /reset clears, /exit quits.
#include <cstdio>
#include <iostream>

#include "command.h"
#include "model_options.h"
#include "qforge/chat_template.h"
#include "qforge/generate.h"
#include "qforge/status.h"
#include "sampling_options.h"

namespace qforge::cli {
namespace {

struct ChatArgs {
  ModelOptions m;
  SamplingArgs s;
  std::string system;
};

int run(const ChatArgs& a) {
  auto lm = load_model(a.m, true);
  Model& model = *lm.model;
  Tokenizer& tok = *lm.tokenizer;
  if (tok.chat_template().empty()) throw Error(model.dir() + ": the tokenizer has no chat template");
  GenerateOptions g = make_generate_options(a.s, load_generation_defaults(model.dir(), model.config()));
  const int64_t max_pos = model.config().max_position_embeddings;
  nlohmann::json messages = nlohmann::json::array();
  auto reset = [&] {
    messages = nlohmann::json::array();
    if (!a.system.empty()) messages.push_back({{"role", "system"}, {"content", a.system}});
  };
  reset();
  std::vector<int32_t> cached;  // token ids whose keys/values are in the KV cache, in order
  std::fprintf(stderr, "qforge chat with %s (%s on %s). /reset clears the history, /exit quits.\n", model.dir().c_str(),
               std::string(dtype_name(model.weight_dtype())).c_str(), model.backend_name().c_str());
  std::string line;
  for (;;) {
    std::printf("> ");
    std::fflush(stdout);
    if (!std::getline(std::cin, line)) {
      std::printf("\n");
      break;
    }
    if (line == "/exit" || line == "/quit") break;
    if (line == "/reset") {
      reset();
      cached.clear();
      std::printf("(history cleared)\n");
      continue;
    }
    if (line.empty()) continue;
    messages.push_back({{"role", "user"}, {"content", line}});
    auto ids = tok.encode(apply_chat_template(tok, messages, true), false);
    if (int64_t(ids.size()) + g.max_new_tokens > max_pos) {
      messages.erase(messages.end() - 1);
      std::printf("(the conversation would exceed %lld tokens; /reset to start again)\n", (long long)max_pos);
      continue;
    }
    size_t p = 0;
    while (p < cached.size() && p < ids.size() && cached[p] == ids[p]) ++p;
    if (p == ids.size()) --p;  // always run at least one token to get fresh logits
    std::span<const int32_t> all(ids);
    auto r = generate(model, &tok, all.subspan(p), g,
                      [](int32_t, const std::string& piece) {
                        std::fwrite(piece.data(), 1, piece.size(), stdout);
                        std::fflush(stdout);
                      },
                      int64_t(p), all.first(p));
    std::printf("\n");
    messages.push_back({{"role", "assistant"}, {"content", r.text}});
    cached = ids;
    if (!r.new_ids.empty()) cached.insert(cached.end(), r.new_ids.begin(), r.new_ids.end() - 1);
  }
  return 0;
}

Registrar reg("chat", "Interactive multi-turn chat in the model's chat template", [](CLI::App& app) {
  auto a = std::make_shared<ChatArgs>();
  add_model_options(app, a->m, false);
  add_sampling_options(app, a->s);
  app.add_option("--system", a->system, "System message at the start of the conversation");
  return [a] { return run(*a); };
});

}  // namespace
}  // namespace qforge::cli
