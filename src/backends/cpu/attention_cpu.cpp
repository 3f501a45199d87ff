// backends/cpu/attention_cpu.cpp — threaded causal GQA attention over the KV cache: one task per
// (query token, head), AVX2 dot/axpy inner loops, f32 accumulation (the reference uses double).
#include <cmath>
#include <cstring>
#include <vector>

#include "backends/cpu/cpu_kernels.h"
#include "backends/ref/ref_ops.h"
#include "core/thread_pool.h"

namespace qforge::cpu {

namespace {
void attention_row_fast(const float* q, const float* kc, const float* vc, int64_t n_pos, int64_t first,
                        int64_t stride, int64_t hd, float scale, float* out, float* scores) {
  float mx = -INFINITY;
  for (int64_t p = first; p < n_pos; ++p) {
    scores[p] = dot_f32_avx2(q, kc + p * stride, hd) * scale;
    mx = std::max(mx, scores[p]);
  }
  float sum = 0;
  for (int64_t p = first; p < n_pos; ++p) {
    scores[p] = std::exp(scores[p] - mx);
    sum += scores[p];
  }
  std::memset(out, 0, sizeof(float) * size_t(hd));
  float inv = 1.0f / sum;
  for (int64_t p = first; p < n_pos; ++p) axpy_f32_avx2(scores[p] * inv, vc + p * stride, out, hd);
}
}  // namespace

void attention(const float* q, const float* k, const float* v, float* k_cache, float* v_cache, int64_t n,
               int64_t pos0, int64_t heads, int64_t kv_heads, int64_t head_dim, int64_t sliding_window, float* out) {
  int64_t kv_dim = kv_heads * head_dim;
  std::memcpy(k_cache + pos0 * kv_dim, k, sizeof(float) * size_t(n * kv_dim));
  std::memcpy(v_cache + pos0 * kv_dim, v, sizeof(float) * size_t(n * kv_dim));
  const float scale = 1.0f / std::sqrt(float(head_dim));
  const int64_t group = heads / kv_heads;
  const bool simd = cpu_has_avx2();
  ThreadPool::global().parallel_for(n * heads, 1, [&](int64_t a, int64_t b) {
    std::vector<float> scores(size_t(pos0 + n));
    for (int64_t task = a; task < b; ++task) {
      int64_t i = task / heads, h = task % heads;
      int64_t pos = pos0 + i;
      int64_t first = sliding_window > 0 ? std::max<int64_t>(0, pos - sliding_window + 1) : 0;
      const float* kc = k_cache + (h / group) * head_dim;
      const float* vc = v_cache + (h / group) * head_dim;
      float* o = out + (i * heads + h) * head_dim;
      if (simd) attention_row_fast(q + (i * heads + h) * head_dim, kc, vc, pos + 1, first, kv_dim, head_dim, scale, o,
                                   scores.data());
      else ref::attention_row(q + (i * heads + h) * head_dim, kc, vc, pos + 1, first, kv_dim, head_dim, scale, o,
                              scores.data());
    }
  });
}

}  // namespace qforge::cpu
