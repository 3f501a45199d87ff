// tools/qforge/cmd_ppl.cpp — `qforge ppl`: perplexity of a text file under the reference rule
// (see qforge/perplexity.h), for any weight format (--quant) and dtype.
#include <cstdio>
#include <fstream>
#include <iterator>

#include "command.h"
#include "model_options.h"
#include "qforge/perplexity.h"
#include "qforge/status.h"

namespace qforge::cli {
namespace {

struct PplArgs {
  ModelOptions m;
  std::string text_file;
  int64_t ctx = 512, max_windows = 0;
  bool json = false;
};

int run(const PplArgs& a) {
  if (a.text_file.empty()) throw Error("--text-file is required");
  if (!std::filesystem::is_regular_file(a.text_file)) throw Error(a.text_file + ": no such file");
  std::ifstream f(a.text_file, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  auto lm = load_model(a.m, true);
  auto ids = lm.tokenizer->encode(text, false);
  auto r = perplexity(*lm.model, ids, a.ctx, a.max_windows, [&](int64_t i, int64_t n) {
    if (!a.json) std::fprintf(stderr, "\rwindow %lld/%lld", (long long)i, (long long)n);
  });
  if (!a.json) std::fprintf(stderr, "\n");
  nlohmann::json j{{"ppl", r.ppl},       {"tokens_scored", r.tokens_scored}, {"nll_per_token", r.nll_per_token},
                   {"windows", r.windows}, {"ctx", a.ctx},                   {"quant", lm.model->quant_format() == QuantFormat::None ? std::string("none")
                                                                    : std::string(quant_traits(lm.model->quant_format()).name)},
                   {"dtype", std::string(dtype_name(lm.model->weight_dtype()))}};
  if (a.json) print_json(j);
  else std::printf("perplexity %.4f over %lld tokens (%lld windows of %lld)\n", r.ppl, (long long)r.tokens_scored,
                   (long long)r.windows, (long long)a.ctx);
  return 0;
}

Registrar reg("ppl", "Perplexity of a text file (non-overlapping windows)", [](CLI::App& app) {
  auto a = std::make_shared<PplArgs>();
  add_model_options(app, a->m, false);
  app.add_option("--text-file", a->text_file, "UTF-8 text to score");
  app.add_option("--ctx", a->ctx, "Window length in tokens")->capture_default_str();
  app.add_option("--max-windows", a->max_windows, "Score only the first N windows (0 = all)");
  app.add_flag("--json", a->json, "Print one JSON object as the last line");
  return [a] { return run(*a); };
});

}  // namespace
}  // namespace qforge::cli
