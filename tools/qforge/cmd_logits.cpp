// tools/qforge/cmd_logits.cpp — `qforge logits`: the full forward over the prompt, written as
// little-endian float32 [prompt tokens, vocab] to --out (temp file + rename: never partial).
#include <cstdio>
#include <fstream>
#include <random>
#include <unistd.h>

#include "command.h"
#include "model_options.h"
#include "qforge/status.h"

namespace qforge::cli {
namespace {

struct LogitsArgs {
  ModelOptions m;
  std::string prompt, ids, out;
  bool json = false;
};

void write_atomically(const std::string& path, const void* data, size_t n) {
  std::string tmp = path + ".tmp-" + std::to_string(getpid()) + "-" + std::to_string(std::random_device{}());
  {
    std::ofstream f(tmp, std::ios::binary);
    if (!f) throw Error(path + ": cannot write (" + std::strerror(errno) + ")");
    f.write(static_cast<const char*>(data), std::streamsize(n));
    f.flush();
    if (!f) {
      f.close();
      std::remove(tmp.c_str());
      throw Error(path + ": write failed");
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw Error(path + ": cannot rename into place (" + std::strerror(errno) + ")");
  }
}

int run(const LogitsArgs& a) {
  if (a.out.empty()) throw Error("--out is required");
  if (a.prompt.empty() == a.ids.empty()) throw Error("give exactly one of --prompt or --ids");
  auto lm = load_model(a.m, !a.prompt.empty());
  std::vector<int32_t> ids = a.prompt.empty() ? parse_id_list(a.ids, "--ids") : lm.tokenizer->encode(a.prompt, true);
  auto logits = lm.model->forward(ids, 0, true);
  write_atomically(a.out, logits.data(), logits.size() * sizeof(float));
  nlohmann::json j{{"prompt_ids", ids}, {"shape", {ids.size(), lm.model->config().vocab_size}}, {"out", a.out}};
  if (a.json) print_json(j);
  else std::printf("wrote %zu x %lld float32 logits to %s\n", ids.size(), (long long)lm.model->config().vocab_size, a.out.c_str());
  return 0;
}

Registrar reg("logits", "Write the prompt's full logits as float32 [tokens, vocab]", [](CLI::App& app) {
  auto a = std::make_shared<LogitsArgs>();
  add_model_options(app, a->m, false);
  app.add_option("--prompt", a->prompt, "Prompt text (BOS per the tokenizer)");
  app.add_option("--ids", a->ids, "Comma-separated token ids instead of a prompt");
  app.add_option("--out", a->out, "Output file (.f32)");
  app.add_flag("--json", a->json, "Print one JSON object as the last line");
  return [a] { return run(*a); };
});

}  // namespace
}  // namespace qforge::cli
