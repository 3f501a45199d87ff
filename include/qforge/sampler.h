// qforge/sampler.h — the sampler chain, in transformers' order: repetition penalty, then
// temperature, top-k, top-p, min-p, then a seeded multinomial draw (or argmax when greedy).
#pragma once
#include <cstdint>
#include <optional>
#include <random>
#include <span>
#include <vector>

namespace qforge {

struct SamplingParams {
  bool greedy = true;
  float temperature = 1.0f;
  int top_k = 50;          // transformers' GenerationConfig default; 0 disables
  float top_p = 1.0f;
  float min_p = 0.0f;
  float repetition_penalty = 1.0f;
  uint64_t seed = 0;
};

class Sampler {
 public:
  explicit Sampler(const SamplingParams& p);
  // `history` = prompt + generated ids (for the repetition penalty). Modifies `logits`.
  int32_t sample(std::span<float> logits, std::span<const int32_t> history);
  const SamplingParams& params() const { return p_; }

  // Sampling from candidates selected where the logits live (Model::forward_top_k, which also
  // applies the repetition penalty there). How many candidates the next draw needs from a row of
  // `vocab` logits: 1 when greedy, top_k + 1 with top-k (the extra one shows whether a tie
  // crosses the k boundary), 0 when it needs the whole row (no top-k, or top_k + 1 > vocab).
  int candidates_needed(int64_t vocab) const;
  // Samples from those candidates (penalised values and their ids, best first as
  // Backend::select_top_k orders them): the same token and the same random draws as sample() on
  // the whole row. Returns nullopt, drawing nothing, when the candidates cannot decide exactly (a
  // NaN or infinite best logit after temperature, or a tie across the k boundary): then call
  // sample_penalized() on the whole (already penalised) row.
  std::optional<int32_t> sample_candidates(std::span<const float> values, std::span<const int32_t> ids);
  // sample() without its repetition-penalty step (for a row that is already penalised).
  int32_t sample_penalized(std::span<float> logits);

 private:
  int32_t draw(std::span<float> logits);  // top-p, min-p, then the multinomial draw
  SamplingParams p_;
  std::mt19937_64 rng_;
};

// Index of the largest value; the first one on ties (as torch.argmax).
int32_t argmax(std::span<const float> v);

}  // namespace qforge
