// sampling/sampler.cpp — see qforge/sampler.h. Each warper mirrors its transformers
// LogitsProcessor: filtered tokens get -inf, survivors keep their scaled logits.
#include "qforge/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <unordered_set>

#include "qforge/status.h"

namespace qforge {

int32_t argmax(std::span<const float> v) {
  int32_t best = 0;
  for (size_t i = 1; i < v.size(); ++i)
    if (v[i] > v[size_t(best)] || (std::isnan(v[i]) && !std::isnan(v[size_t(best)]))) best = int32_t(i);
  return best;
}

Sampler::Sampler(const SamplingParams& p) : p_(p), rng_(p.seed) {
  if (!p.greedy) {
    if (!(p.temperature > 0)) throw Error("--temperature must be > 0 (use --greedy for argmax decoding)");
    if (p.top_k < 0) throw Error("--top-k must be >= 0");
    if (!(p.top_p > 0 && p.top_p <= 1)) throw Error("--top-p must be in (0, 1]");
    if (!(p.min_p >= 0 && p.min_p <= 1)) throw Error("--min-p must be in [0, 1]");
  }
  if (!(p.repetition_penalty > 0)) throw Error("--repetition-penalty must be > 0");
}

namespace {
void softmax(std::span<const float> x, std::vector<double>& p) {
  p.resize(x.size());
  float mx = *std::max_element(x.begin(), x.end());
  double s = 0;
  for (size_t i = 0; i < x.size(); ++i) s += (p[i] = std::isinf(x[i]) && x[i] < 0 ? 0.0 : std::exp(double(x[i] - mx)));
  for (auto& v : p) v /= s;
}
}  // namespace

int32_t Sampler::sample(std::span<float> logits, std::span<const int32_t> history) {
  const size_t V = logits.size();
  if (p_.repetition_penalty != 1.0f) {
    std::unordered_set<int32_t> seen(history.begin(), history.end());
    for (int32_t id : seen)
      if (id >= 0 && size_t(id) < V) {
        float& s = logits[size_t(id)];
        s = s < 0 ? s * p_.repetition_penalty : s / p_.repetition_penalty;
      }
  }
  if (p_.greedy) return argmax(logits);
  const float ninf = -INFINITY;
  for (auto& s : logits) s /= p_.temperature;
  if (p_.top_k > 0 && size_t(p_.top_k) < V) {
    std::vector<float> tmp(logits.begin(), logits.end());
    std::nth_element(tmp.begin(), tmp.begin() + (p_.top_k - 1), tmp.end(), std::greater<float>());
    float kth = tmp[size_t(p_.top_k - 1)];
    for (auto& s : logits)
      if (s < kth) s = ninf;
  }
  std::vector<double> prob;
  if (p_.top_p < 1.0f) {
    // Sort ascending; drop the low tail whose cumulative probability is <= 1 - top_p; keep >= 1.
    softmax(logits, prob);
    std::vector<int32_t> idx(V);
    std::iota(idx.begin(), idx.end(), 0);
    std::stable_sort(idx.begin(), idx.end(), [&](int32_t a, int32_t b) { return logits[size_t(a)] < logits[size_t(b)]; });
    double cum = 0;
    for (size_t r = 0; r + 1 < V; ++r) {
      cum += prob[size_t(idx[r])];
      if (cum <= 1.0 - double(p_.top_p)) logits[size_t(idx[r])] = ninf;
      else break;
    }
  }
  if (p_.min_p > 0.0f) {
    softmax(logits, prob);
    double top = *std::max_element(prob.begin(), prob.end());
    for (size_t i = 0; i < V; ++i)
      if (prob[i] < double(p_.min_p) * top) logits[i] = ninf;
  }
  softmax(logits, prob);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  double r = u(rng_), cum = 0;
  int32_t last_ok = argmax(logits);
  for (size_t i = 0; i < V; ++i) {
    if (prob[i] <= 0) continue;
    cum += prob[i];
    last_ok = int32_t(i);
    if (r < cum) return int32_t(i);
  }
  return last_ok;
}

}  // namespace qforge
