// backends/ref/attention_ref.cpp — reference causal GQA attention over the KV cache
// (softmax(q·k/sqrt(d))·v, optional sliding window as Mistral's mask: key j visible to query i
// when i - window < j <= i).
#include <cmath>
#include <cstring>
#include <vector>

#include "backends/ref/ref_ops.h"

namespace qforge::ref {

void attention_row(const float* q, const float* k_cache, const float* v_cache, int64_t n_pos, int64_t first_pos,
                   int64_t kv_stride, int64_t head_dim, float scale, float* out, float* scores) {
  float mx = -INFINITY;
  for (int64_t p = first_pos; p < n_pos; ++p) {
    const float* k = k_cache + p * kv_stride;
    double dot = 0;
    for (int64_t d = 0; d < head_dim; ++d) dot += double(q[d]) * k[d];
    scores[p] = float(dot) * scale;
    mx = std::max(mx, scores[p]);
  }
  double sum = 0;
  for (int64_t p = first_pos; p < n_pos; ++p) {
    scores[p] = std::exp(scores[p] - mx);
    sum += scores[p];
  }
  for (int64_t d = 0; d < head_dim; ++d) out[d] = 0;
  for (int64_t p = first_pos; p < n_pos; ++p) {
    float w = float(scores[p] / sum);
    const float* v = v_cache + p * kv_stride;
    for (int64_t d = 0; d < head_dim; ++d) out[d] += w * v[d];
  }
}

void attention(const float* q, const float* k, const float* v, float* k_cache, float* v_cache, int64_t n,
               int64_t pos0, int64_t heads, int64_t kv_heads, int64_t head_dim, int64_t sliding_window, float* out) {
  int64_t kv_dim = kv_heads * head_dim;
  std::memcpy(k_cache + pos0 * kv_dim, k, sizeof(float) * size_t(n * kv_dim));
  std::memcpy(v_cache + pos0 * kv_dim, v, sizeof(float) * size_t(n * kv_dim));
  std::vector<float> scores(size_t(pos0 + n));
  float scale = 1.0f / std::sqrt(float(head_dim));
  int64_t group = heads / kv_heads;
  for (int64_t i = 0; i < n; ++i) {
    int64_t pos = pos0 + i;
    int64_t first = sliding_window > 0 ? std::max<int64_t>(0, pos - sliding_window + 1) : 0;
    for (int64_t h = 0; h < heads; ++h) {
      int64_t kvh = h / group;
      attention_row(q + (i * heads + h) * head_dim, k_cache + kvh * head_dim, v_cache + kvh * head_dim, pos + 1,
                    first, kv_dim, head_dim, scale, out + (i * heads + h) * head_dim, scores.data());
    }
  }
}

}  // namespace qforge::ref
