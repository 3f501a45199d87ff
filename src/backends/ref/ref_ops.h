// backends/ref/ref_ops.h — the scalar reference implementation of every op: plain loops, f32
// storage, double accumulation for dot products and reductions. This is the ground truth that
// every optimised backend is tested against; it is written to be obviously right, not fast.
#pragma once
#include <cstdint>
#include <vector>

#include "backends/backend.h"

namespace qforge::ref {

float load_float(const Tensor& t, int64_t i);  // element i of an f32/f16/bf16 tensor

void embed(const Tensor& table, const int32_t* ids, int64_t n, float* out);
void linear(const Linear& l, const float* x, int64_t n, float* y);
void rmsnorm(const float* x, const Tensor& w, int64_t n, int64_t d, float eps, float* y);
void rope(float* x, int64_t n, int64_t heads, int64_t head_dim, int64_t pos0, const RopeTable& t);
void attention(const float* q, const float* k, const float* v, float* k_cache, float* v_cache, int64_t n,
               int64_t pos0, int64_t heads, int64_t kv_heads, int64_t head_dim, int64_t sliding_window, float* out);
// One query row against cache positions [0, n_pos): the shared inner routine of attention.
void attention_row(const float* q, const float* k_cache, const float* v_cache, int64_t n_pos, int64_t first_pos,
                   int64_t kv_stride, int64_t head_dim, float scale, float* out, float* scores);
void swiglu(const float* gate, const float* up, int64_t n, float* out);
void add(float* x, const float* y, int64_t n);

}  // namespace qforge::ref

namespace qforge::ref {
// The input a LinearInput describes (rmsnorm / swiglu / plain), materialised as [n, dim].
std::vector<float> form_linear_input(const LinearInput& in, int64_t n, int64_t dim);
}  // namespace qforge::ref
