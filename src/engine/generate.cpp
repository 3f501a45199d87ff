// engine/generate.cpp — generation defaults from generation_config.json and the generation
// loop (prefill, then one forward per new token; streamed through StreamingDecoder). Greedy and
// top-k decoding take only the best candidates from the backend (Model::forward_top_k).
#include "qforge/generate.h"

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>

#include "qforge/status.h"
#include "sampling/candidates.h"

namespace qforge {

GenerationDefaults load_generation_defaults(const std::filesystem::path& dir, const ModelConfig& cfg) {
  GenerationDefaults d;
  for (auto id : cfg.eos_token_ids) d.eos_ids.push_back(int32_t(id));
  auto path = dir / "generation_config.json";
  if (dir.empty() || !std::filesystem::exists(path)) return d;
  std::ifstream f(path);
  nlohmann::json j = nlohmann::json::parse(f, nullptr, false);
  if (j.is_discarded() || !j.is_object()) throw Error(path.string() + ": not valid JSON");
  auto num = [&](const char* k) -> std::optional<float> {
    if (j.contains(k) && j[k].is_number()) return j[k].get<float>();
    return std::nullopt;
  };
  if (j.contains("eos_token_id")) {
    const auto& e = j["eos_token_id"];
    std::vector<int32_t> ids;
    if (e.is_number_integer()) ids.push_back(e.get<int32_t>());
    else if (e.is_array())
      for (const auto& x : e)
        if (x.is_number_integer()) ids.push_back(x.get<int32_t>());
    if (!ids.empty()) d.eos_ids = ids;
  }
  if (j.contains("do_sample") && j["do_sample"].is_boolean()) d.do_sample = j["do_sample"].get<bool>();
  d.temperature = num("temperature");
  d.top_p = num("top_p");
  d.min_p = num("min_p");
  d.repetition_penalty = num("repetition_penalty");
  if (j.contains("top_k") && j["top_k"].is_number_integer()) d.top_k = j["top_k"].get<int>();
  return d;
}

GenerateResult generate(Model& model, const Tokenizer* tok, std::span<const int32_t> prompt_ids,
                        const GenerateOptions& opt, const TokenCallback& on_token, int64_t pos0,
                        std::span<const int32_t> history) {
  using clock = std::chrono::steady_clock;
  GenerateResult r;
  r.prompt_ids.assign(prompt_ids.begin(), prompt_ids.end());
  if (prompt_ids.empty()) throw Error("the prompt encodes to no tokens");
  if (opt.max_new_tokens < 0) throw Error("--max-new-tokens must be >= 0");
  const int64_t max_pos = model.config().max_position_embeddings;
  if (pos0 + int64_t(prompt_ids.size()) > max_pos)
    throw Error("prompt of " + std::to_string(pos0 + int64_t(prompt_ids.size())) +
                " tokens exceeds max_position_embeddings (" + std::to_string(max_pos) + ")");
  model.reserve_context(std::min(max_pos, pos0 + int64_t(prompt_ids.size()) + opt.max_new_tokens));
  Sampler sampler(opt.sampling);
  std::vector<int32_t> hist(history.begin(), history.end());
  hist.insert(hist.end(), prompt_ids.begin(), prompt_ids.end());
  std::optional<StreamingDecoder> stream;
  if (tok) stream.emplace(*tok, true);

  // Greedy and top-k draws need only a few candidates: the backend selects them where the logits
  // are (after the repetition penalty) and only those travel; the sampler declines the rare case
  // the candidates cannot decide exactly (then the whole penalised row is fetched). Without top-k
  // the whole row goes to the host sampler as before.
  const int64_t V = model.config().vocab_size;
  const int need = sampler.candidates_needed(V);
  const float penalty = opt.sampling.repetition_penalty;
  std::vector<float> logits;
  Model::TopK cand;
  auto step_forward = [&](std::span<const int32_t> toks, int64_t p) {
    if (need == 0) {
      logits = model.forward(toks, p);
      return;
    }
    std::vector<int32_t> pen;
    if (penalty != 1.0f) pen = penalized_ids(hist, V);
    cand = model.forward_top_k(toks, p, need, pen, penalty);
  };
  auto next_token = [&]() -> int32_t {
    if (need == 0) return sampler.sample(logits, hist);
    if (auto id = sampler.sample_candidates(cand.values, cand.ids)) return *id;
    logits = model.last_logits();
    return sampler.sample_penalized(logits);
  };

  auto t0 = clock::now();
  if (opt.max_new_tokens > 0) step_forward(prompt_ids, pos0);
  auto t1 = clock::now();
  r.prefill_seconds = std::chrono::duration<double>(t1 - t0).count();
  int64_t pos = pos0 + int64_t(prompt_ids.size());
  r.stop_reason = "length";
  for (int64_t step = 0; step < opt.max_new_tokens; ++step) {
    int32_t id = next_token();
    r.new_ids.push_back(id);
    hist.push_back(id);
    bool is_eos = std::find(opt.eos_ids.begin(), opt.eos_ids.end(), id) != opt.eos_ids.end();
    if (on_token) on_token(id, stream ? stream->push(id) : std::string());
    if (is_eos && !opt.ignore_eos) {
      r.stop_reason = "eos";
      break;
    }
    if (step + 1 == opt.max_new_tokens) break;
    if (pos >= max_pos) {
      r.stop_reason = "context";
      break;
    }
    auto a = clock::now();
    step_forward(std::span<const int32_t>(&id, 1), pos);
    r.decode_seconds += std::chrono::duration<double>(clock::now() - a).count();
    ++r.decode_steps;
    ++pos;
  }
  if (stream && on_token) {
    std::string rest = stream->finish();
    if (!rest.empty()) on_token(-1, rest);
  }
  if (tok) r.text = tok->decode(r.new_ids, true);
  return r;
}

}  // namespace qforge
