// qforge/perplexity.h — perplexity under the rule of shared/eval/kjv_quant_reference.json:
// tokens = encode(text, no special tokens); non-overlapping windows of ctx tokens from the
// start; each window scored on positions 1..ctx-1 given the previous ones; first max_windows.
#pragma once
#include <cstdint>
#include <functional>
#include <span>

#include "qforge/model.h"

namespace qforge {

struct PerplexityResult {
  double ppl = 0;
  double nll_per_token = 0;
  int64_t tokens_scored = 0;
  int64_t windows = 0;
};

// max_windows <= 0: every full window. progress(i, n) after each window.
PerplexityResult perplexity(Model& m, std::span<const int32_t> tokens, int64_t ctx, int64_t max_windows,
                            const std::function<void(int64_t, int64_t)>& progress = {});

}  // namespace qforge
