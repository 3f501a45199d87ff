// qforge/sampler.h — the sampler chain, in transformers' order: repetition penalty, then
// temperature, top-k, top-p, min-p, then a seeded multinomial draw (or argmax when greedy).
#pragma once
#include <cstdint>
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

 private:
  SamplingParams p_;
  std::mt19937_64 rng_;
};

// Index of the largest value; the first one on ties (as torch.argmax).
int32_t argmax(std::span<const float> v);

}  // namespace qforge
