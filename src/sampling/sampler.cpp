// sampling/sampler.cpp — see qforge/sampler.h. Each warper mirrors its transformers
// LogitsProcessor: filtered tokens get -inf, survivors keep their scaled logits.
#include "qforge/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include "qforge/status.h"
#include "sampling/candidates.h"

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
  if (p_.repetition_penalty != 1.0f)
    apply_repetition_penalty(logits, penalized_ids(history, int64_t(logits.size())), p_.repetition_penalty);
  return sample_penalized(logits);
}

int32_t Sampler::sample_penalized(std::span<float> logits) {
  const size_t V = logits.size();
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
  return draw(logits);
}

int Sampler::candidates_needed(int64_t vocab) const {
  if (p_.greedy) return 1;
  if (p_.top_k > 0 && int64_t(p_.top_k) + 1 <= vocab) return p_.top_k + 1;
  return 0;
}

// Why this equals sample() on the whole row (issue 6; tests/unit/sampling_candidates_test.cpp):
// temperature is a monotonic division, so the top-k survivors of the scaled row are the first k
// candidates, plus any entry tying the k-th after scaling (only possible if the (k+1)-th
// candidate ties it: then we decline). Every later step (softmax sums, the top-p cumulation in a
// stable ascending order, min-p, the draw's cumulative scan) sees the masked entries as exact
// zeros, which add nothing; keeping the survivors in id order reproduces every sum bit for bit.
// Entries at -inf (only survivors when the k-th is -inf) have zero probability either way. A NaN
// ranks first, so a NaN anywhere shows in the best candidate: declined, as are infinities (their
// softmax is NaN over the whole row).
std::optional<int32_t> Sampler::sample_candidates(std::span<const float> values, std::span<const int32_t> ids) {
  if (values.empty() || values.size() != ids.size()) throw Error("sample_candidates: need matching values and ids");
  if (p_.greedy) return ids[0];
  const size_t k = size_t(p_.top_k);
  if (p_.top_k <= 0 || values.size() != k + 1)
    throw Error("sample_candidates: expected top_k + 1 = " + std::to_string(p_.top_k + 1) + " candidates, got " +
                std::to_string(values.size()));
  std::vector<float> t(k + 1);
  for (size_t i = 0; i <= k; ++i) t[i] = values[i] / p_.temperature;
  if (!std::isfinite(t[0])) return std::nullopt;
  if (t[k] == t[k - 1] && t[k - 1] != -INFINITY) return std::nullopt;
  std::vector<size_t> order(k);
  std::iota(order.begin(), order.end(), size_t(0));
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return ids[a] < ids[b]; });
  std::vector<float> row(k);
  for (size_t j = 0; j < k; ++j) row[j] = t[order[j]];
  return ids[order[size_t(draw(row))]];
}

int32_t Sampler::draw(std::span<float> logits) {
  const size_t V = logits.size();
  const float ninf = -INFINITY;
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
