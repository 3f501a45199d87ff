// tools/qforge/model_options.h — the options every model-loading subcommand shares (--model,
// --random-weights, --dtype, --device, --threads, --quant and its parameters) and the one place
// that turns them into a loaded Model (+ Tokenizer when the model has one).
#pragma once
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <memory>
#include <string>

#include "qforge/model.h"
#include "qforge/tokenizer.h"

namespace qforge::cli {

struct ModelOptions {
  std::string model;           // directory or repo id
  std::string random_weights;  // config.json for a random-weight model
  std::string dtype, device = "auto", max_memory, quant, compute_dtype, skip_modules = "lm_head", scale;
  int threads = 0;
  int blocksize = 0;
  bool double_quant = false;
  bool symmetric = false;
  uint64_t seed_weights = 1;
};

// allow_random: also offer --random-weights CONFIG_JSON; with_quant: offer --quant & co.
void add_model_options(CLI::App& app, ModelOptions& o, bool allow_random, bool with_quant = true);
LoadOptions to_load_options(const ModelOptions& o);

struct LoadedModel {
  std::unique_ptr<Model> model;
  std::unique_ptr<Tokenizer> tokenizer;  // null for random-weight models
  double load_seconds = 0;
};
LoadedModel load_model(const ModelOptions& o, bool need_tokenizer);

// The placement as JSON [{device, layers: [begin, end], embed, lm_head, bytes}], and one line for
// humans ("cuda:0: embed + layers 0-15; cpu: layers 16-21 + lm_head").
nlohmann::json placement_json(const Model& m);
std::string placement_text(const Model& m);

// "1,2,3" -> ids; throws naming the flag on a bad entry.
std::vector<int32_t> parse_id_list(const std::string& s, const std::string& flag);

}  // namespace qforge::cli
