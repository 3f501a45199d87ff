// tools/qforge/cmd_tokenize.cpp — `qforge tokenize` (text -> ids and token strings) and
// `qforge detokenize` (ids -> text) with a model directory's tokenizer.json; --json prints one
// object as the last stdout line.
#include <cstdio>
#include <fstream>
#include <sstream>

#include "command.h"
#include "io/checkpoint.h"
#include "qforge/status.h"
#include "qforge/tokenizer.h"

namespace qforge::cli {
namespace {

struct TokenizeArgs {
  std::string model, text, file;
  bool no_special = false, json = false, tokenizers_lib = false;
};

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& model, bool tokenizers_lib) {
  if (model.empty()) throw Error("--model is required");
  auto dir = io::resolve_model_dir(model);
  return Tokenizer::load(dir, TokenizerLoadOptions{.transformers_compat = !tokenizers_lib});
}

Registrar reg_tok("tokenize", "Encode text to token ids with a model's tokenizer.json", [](CLI::App& app) {
  auto a = std::make_shared<TokenizeArgs>();
  app.add_option("--model", a->model, "Model directory (or ORG/NAME in the local Hugging Face cache)");
  app.add_option("--text", a->text, "Text to encode");
  app.add_option("--file", a->file, "Read the text to encode from this file instead of --text");
  app.add_flag("--no-special", a->no_special, "Do not add BOS/EOS (special tokens inside the text still match)");
  app.add_flag("--tokenizers-lib", a->tokenizers_lib,
               "Behave as the tokenizers library on tokenizer.json alone (ignore tokenizer_config.json)");
  app.add_flag("--json", a->json, "Print {\"ids\":[...],\"tokens\":[...]} as the last line");
  return [a]() -> int {
    auto tok = load_tokenizer(a->model, a->tokenizers_lib);
    std::string text = a->text;
    if (!a->file.empty()) {
      std::ifstream f(a->file, std::ios::binary);
      if (!f) throw Error("--file: cannot open '" + a->file + "'");
      std::stringstream ss;
      ss << f.rdbuf();
      text = ss.str();
    }
    auto ids = tok->encode(text, !a->no_special);
    if (a->json) {
      print_json({{"ids", ids}, {"tokens", tok->ids_to_tokens(ids)}});
    } else {
      for (size_t i = 0; i < ids.size(); ++i) std::printf(i ? " %d" : "%d", ids[i]);
      std::printf("\n");
    }
    return 0;
  };
});

struct DetokenizeArgs {
  std::string model, ids;
  bool skip_special = false, json = false, tokenizers_lib = false;
};

std::vector<int32_t> parse_ids(const std::string& s, int64_t vocab) {
  std::vector<int32_t> ids;
  std::string item;
  auto flush = [&] {
    if (item.empty()) return;
    size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != item.size()) throw Error("--ids: '" + item + "' is not an integer");
    if (v < 0 || v >= vocab)
      throw Error("--ids: id " + item + " is outside the vocabulary (size " + std::to_string(vocab) + ")");
    ids.push_back(static_cast<int32_t>(v));
    item.clear();
  };
  for (char c : s) {
    if (c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '[' || c == ']') flush();
    else item += c;
  }
  flush();
  return ids;
}

Registrar reg_detok("detokenize", "Decode token ids to text with a model's tokenizer.json", [](CLI::App& app) {
  auto a = std::make_shared<DetokenizeArgs>();
  app.add_option("--model", a->model, "Model directory (or ORG/NAME in the local Hugging Face cache)");
  app.add_option("--ids", a->ids, "Token ids, e.g. 1,22557,28725")->required();
  app.add_flag("--skip-special", a->skip_special, "Drop special tokens (skip_special_tokens=True)");
  app.add_flag("--tokenizers-lib", a->tokenizers_lib,
               "Behave as the tokenizers library on tokenizer.json alone (ignore tokenizer_config.json)");
  app.add_flag("--json", a->json, "Print {\"text\":...} as the last line");
  return [a]() -> int {
    auto tok = load_tokenizer(a->model, a->tokenizers_lib);
    auto ids = parse_ids(a->ids, tok->vocab_size());
    std::string text = tok->decode(ids, a->skip_special);
    if (a->json) print_json({{"text", text}});
    else std::printf("%s\n", text.c_str());
    return 0;
  };
});

}  // namespace
}  // namespace qforge::cli
