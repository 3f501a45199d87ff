// sampling/candidates.cpp — see candidates.h; also the default (host) Backend::select_top_k:
// copy the row to the host, penalise it there and write it back (so that the row the backend
// holds is the penalised one, as on the GPU), then select on the host.
#include "sampling/candidates.h"

#include <algorithm>
#include <numeric>
#include <string>

#include "backends/backend.h"
#include "qforge/status.h"

namespace qforge {

std::vector<int32_t> penalized_ids(std::span<const int32_t> history, int64_t vocab) {
  std::vector<int32_t> ids;
  for (int32_t id : history)
    if (id >= 0 && id < vocab) ids.push_back(id);
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}

void apply_repetition_penalty(std::span<float> logits, std::span<const int32_t> ids, float penalty) {
  for (int32_t id : ids) {
    float& s = logits[size_t(id)];
    s = s < 0 ? s * penalty : s / penalty;
  }
}

void select_top_k_host(std::span<const float> row, int k, float* values, int32_t* ids) {
  if (k < 1 || size_t(k) > row.size())
    throw Error("select_top_k: k = " + std::to_string(k) + " outside [1, " + std::to_string(row.size()) + "]");
  auto before = [&](int32_t a, int32_t b) { return logit_ranks_before(row[size_t(a)], a, row[size_t(b)], b); };
  if (k == 1) {  // argmax: one pass
    int32_t best = 0;
    for (int32_t i = 1; i < int32_t(row.size()); ++i)
      if (before(i, best)) best = i;
    values[0] = row[size_t(best)];
    ids[0] = best;
    return;
  }
  std::vector<int32_t> idx(row.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), before);
  for (int i = 0; i < k; ++i) {
    ids[i] = idx[size_t(i)];
    values[i] = row[size_t(idx[size_t(i)])];
  }
}

void Backend::select_top_k(float* logits, int64_t n, std::span<const int32_t> penalize, float penalty, int k,
                           float* values, int32_t* ids) {
  std::vector<float> row(static_cast<size_t>(n));
  to_host(logits, row.data(), n);
  if (penalty != 1.0f && !penalize.empty()) {
    for (int32_t id : penalize)
      if (id < 0 || id >= n) throw Error("select_top_k: penalised id " + std::to_string(id) + " outside the vocabulary");
    apply_repetition_penalty(row, penalize, penalty);
    from_host(row.data(), logits, n);
  }
  select_top_k_host(row, k, values, ids);
}

}  // namespace qforge
