// engine/perplexity.cpp — see qforge/perplexity.h. NLL accumulated in double from a stable
// log-softmax of each scored position.
#include "qforge/perplexity.h"

#include <cmath>

#include "qforge/status.h"

namespace qforge {

PerplexityResult perplexity(Model& m, std::span<const int32_t> tokens, int64_t ctx, int64_t max_windows,
                            const std::function<void(int64_t, int64_t)>& progress) {
  if (ctx < 2) throw Error("--ctx must be at least 2");
  if (ctx > m.config().max_position_embeddings)
    throw Error("--ctx " + std::to_string(ctx) + " exceeds max_position_embeddings (" +
                std::to_string(m.config().max_position_embeddings) + ")");
  int64_t n_windows = int64_t(tokens.size()) / ctx;
  if (max_windows > 0) n_windows = std::min(n_windows, max_windows);
  if (n_windows == 0) throw Error("the text has fewer tokens (" + std::to_string(tokens.size()) + ") than one window of " + std::to_string(ctx));
  const size_t V = size_t(m.config().vocab_size);
  double nll = 0;
  int64_t scored = 0;
  for (int64_t w = 0; w < n_windows; ++w) {
    auto win = tokens.subspan(size_t(w * ctx), size_t(ctx));
    auto logits = m.forward(win, 0, true);
    for (int64_t i = 0; i + 1 < ctx; ++i) {
      const float* row = logits.data() + size_t(i) * V;
      float mx = row[0];
      for (size_t j = 1; j < V; ++j) mx = std::max(mx, row[j]);
      double s = 0;
      for (size_t j = 0; j < V; ++j) s += std::exp(double(row[j]) - mx);
      nll += (double(mx) + std::log(s)) - double(row[size_t(win[size_t(i + 1)])]);
      ++scored;
    }
    if (progress) progress(w + 1, n_windows);
  }
  PerplexityResult r;
  r.tokens_scored = scored;
  r.windows = n_windows;
  r.nll_per_token = nll / double(scored);
  r.ppl = std::exp(r.nll_per_token);
  return r;
}

}  // namespace qforge
