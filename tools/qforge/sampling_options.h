// tools/qforge/sampling_options.h — the generation flags shared by `run` and `chat`
// (--max-new-tokens, --greedy, --temperature, --top-k, --top-p, --min-p, --repetition-penalty,
// --seed, --ignore-eos) and how they combine with the model's generation_config.json.
#pragma once
#include <CLI/CLI.hpp>
#include <optional>

#include "qforge/generate.h"

namespace qforge::cli {

struct SamplingArgs {
  int64_t max_new_tokens = 128;
  bool greedy = false, ignore_eos = false;
  std::optional<float> temperature, top_p, min_p, repetition_penalty;
  std::optional<int> top_k;
  uint64_t seed = 0;
};

void add_sampling_options(CLI::App& app, SamplingArgs& a);
// Flags win over generation_config.json; sampling happens when a sampling flag is given or the
// model's generation_config says do_sample (and --greedy is absent). top_k defaults to 50 as in
// transformers' GenerationConfig.
GenerateOptions make_generate_options(const SamplingArgs& a, const GenerationDefaults& d);

}  // namespace qforge::cli
