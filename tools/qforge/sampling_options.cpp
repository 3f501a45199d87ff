// tools/qforge/sampling_options.cpp — see sampling_options.h.
#include "sampling_options.h"

namespace qforge::cli {

void add_sampling_options(CLI::App& app, SamplingArgs& a) {
  app.add_option("--max-new-tokens", a.max_new_tokens, "Tokens to generate at most")->capture_default_str();
  app.add_flag("--greedy", a.greedy, "Argmax decoding (default unless sampling flags or generation_config ask to sample)");
  app.add_option("--temperature", a.temperature, "Sampling temperature");
  app.add_option("--top-k", a.top_k, "Keep the k most likely tokens (default 50 as transformers; 0 = off)");
  app.add_option("--top-p", a.top_p, "Nucleus sampling: keep the smallest set with this probability");
  app.add_option("--min-p", a.min_p, "Drop tokens below min_p × the top probability");
  app.add_option("--repetition-penalty", a.repetition_penalty, "Penalise tokens already present (1 = off)");
  app.add_option("--seed", a.seed, "Random seed (same seed, same output)");
  app.add_flag("--ignore-eos", a.ignore_eos, "Do not stop at the EOS token(s)");
}

GenerateOptions make_generate_options(const SamplingArgs& a, const GenerationDefaults& d) {
  GenerateOptions g;
  g.max_new_tokens = a.max_new_tokens;
  g.ignore_eos = a.ignore_eos;
  g.eos_ids = d.eos_ids;
  SamplingParams& s = g.sampling;
  bool user_sampling = a.temperature || a.top_k || a.top_p || a.min_p;
  s.greedy = a.greedy || !(user_sampling || d.do_sample);
  s.temperature = a.temperature.value_or(d.temperature.value_or(1.0f));
  s.top_k = a.top_k.value_or(d.top_k.value_or(50));
  s.top_p = a.top_p.value_or(d.top_p.value_or(1.0f));
  s.min_p = a.min_p.value_or(d.min_p.value_or(0.0f));
  s.repetition_penalty = a.repetition_penalty.value_or(d.repetition_penalty.value_or(1.0f));
  s.seed = a.seed;
  return g;
}

}  // namespace qforge::cli
