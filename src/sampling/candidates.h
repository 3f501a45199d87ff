// sampling/candidates.h — the pieces of the sampler chain that run where the logits live (see
// Backend::select_top_k): the repetition penalty, and the selection of the k best logits in the
// one order every backend shares (largest first, NaN above everything, ties to the lower id).
// Host reference implementations here; the CUDA backend has its own (cuda_sampling.cu).
#pragma once
#include <cmath>
#include <cstdint>
#include <span>
#include <vector>

namespace qforge {

// The distinct ids of `history` inside [0, vocab), ascending: the tokens the penalty touches.
std::vector<int32_t> penalized_ids(std::span<const int32_t> history, int64_t vocab);

// transformers' RepetitionPenaltyLogitsProcessor on the given distinct ids: s < 0 ? s * p : s / p.
void apply_repetition_penalty(std::span<float> logits, std::span<const int32_t> ids, float penalty);

// Whether logit a (at id ia) ranks before b (at id ib): NaN first (as argmax()), then larger value
// (+0 == -0), then lower id. A strict total order on (value, id).
inline bool logit_ranks_before(float a, int32_t ia, float b, int32_t ib) {
  const bool na = std::isnan(a), nb = std::isnan(b);
  if (na != nb) return na;
  if (!na && a != b) return a > b;
  return ia < ib;
}

// The k best entries of `row` in that order (1 <= k <= row.size()): values[i], ids[i].
void select_top_k_host(std::span<const float> row, int k, float* values, int32_t* ids);

}  // namespace qforge
