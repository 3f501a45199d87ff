// backends/ref/rope_ref.cpp — rotary tables (default, linear and llama3 scaling, as
// transformers' ROPE_INIT_FUNCTIONS) and the reference rotate_half application.
#include <cmath>
#include <numbers>

#include "backends/ref/ref_ops.h"
#include "qforge/status.h"

namespace qforge {

RopeTable make_rope_table(const ModelConfig& c, int64_t max_pos) {
  RopeTable t;
  t.max_pos = max_pos;
  t.half = c.head_dim / 2;
  const auto& rs = c.rope_scaling;
  std::vector<double> inv_freq(t.half);
  for (int64_t i = 0; i < t.half; ++i) {
    // transformers computes base ** (arange(0, dim, 2).float() / dim) in float32.
    float expo = float(2 * i) / float(c.head_dim);
    inv_freq[i] = double(1.0f / std::pow(float(c.rope_theta), expo));
  }
  if (rs.type == RopeType::Linear) {
    for (auto& f : inv_freq) f /= rs.factor;
  } else if (rs.type == RopeType::Llama3) {
    double old_ctx = double(rs.original_max_position_embeddings);
    double low_wl = old_ctx / rs.low_freq_factor, high_wl = old_ctx / rs.high_freq_factor;
    for (auto& f : inv_freq) {
      double wl = 2 * std::numbers::pi / f;
      double scaled = wl > low_wl ? f / rs.factor : f;
      bool medium = !(wl < high_wl) && !(wl > low_wl);
      if (medium) {
        double smooth = (old_ctx / wl - rs.low_freq_factor) / (rs.high_freq_factor - rs.low_freq_factor);
        scaled = (1 - smooth) * scaled / rs.factor + smooth * scaled;
      }
      f = scaled;
    }
  } else if (rs.type != RopeType::Default) {
    throw Error("rope scaling type is not supported by the forward pass yet");
  }
  t.cos.resize(size_t(max_pos * t.half));
  t.sin.resize(size_t(max_pos * t.half));
  for (int64_t p = 0; p < max_pos; ++p)
    for (int64_t i = 0; i < t.half; ++i) {
      // freqs = position * inv_freq in float32, then cos/sin of that float.
      float ang = float(p) * float(inv_freq[i]);
      t.cos[p * t.half + i] = float(std::cos(double(ang)));
      t.sin[p * t.half + i] = float(std::sin(double(ang)));
    }
  return t;
}

namespace ref {

void rope(float* x, int64_t n, int64_t heads, int64_t head_dim, int64_t pos0, const RopeTable& t) {
  int64_t half = head_dim / 2;
  for (int64_t i = 0; i < n; ++i) {
    int64_t pos = pos0 + i;
    QF_CHECK(pos < t.max_pos, "position beyond the rope table");
    const float* c = &t.cos[pos * half];
    const float* s = &t.sin[pos * half];
    for (int64_t h = 0; h < heads; ++h) {
      float* v = x + (i * heads + h) * head_dim;
      for (int64_t j = 0; j < half; ++j) {
        float a = v[j], b = v[j + half];
        v[j] = a * c[j] - b * s[j];
        v[j + half] = b * c[j] + a * s[j];
      }
    }
  }
}

}  // namespace ref
}  // namespace qforge
