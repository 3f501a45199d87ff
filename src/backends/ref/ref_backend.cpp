// backends/ref/ref_backend.cpp — the "ref" backend: host memory, the fused ops composed from the
// scalar reference ops (rmsnorm/swiglu into a temporary input, then each linear; rope then
// attention). This composition *is* the definition every fused kernel is tested against.
#include <cstring>
#include <vector>

#include "backends/host_backend.h"
#include "backends/ref/ref_ops.h"

namespace qforge {

namespace ref {
// The input a LinearInput describes, materialised [n, in].
std::vector<float> form_linear_input(const LinearInput& in, int64_t n, int64_t dim) {
  std::vector<float> t(size_t(n * dim));
  if (in.rms_weight) rmsnorm(in.x, *in.rms_weight, n, dim, in.eps, t.data());
  else if (in.up) swiglu(in.x, in.up, n * dim, t.data());
  else std::memcpy(t.data(), in.x, t.size() * sizeof(float));
  return t;
}
}  // namespace ref

namespace {

class RefBackend final : public HostBackend {
 public:
  std::string_view name() const override { return "ref"; }
  void embed(const Tensor& t, const int32_t* ids, int64_t n, float* out) override { ref::embed(t, ids, n, out); }
  void linear(std::span<const Linear* const> ls, const LinearInput& in, int64_t n, std::span<float* const> ys,
              bool accumulate) override {
    auto x = ref::form_linear_input(in, n, ls[0]->in);
    for (size_t i = 0; i < ls.size(); ++i) {
      std::vector<float> y(size_t(n * ls[i]->out));
      ref::linear(*ls[i], x.data(), n, y.data());
      if (accumulate) ref::add(ys[i], y.data(), int64_t(y.size()));
      else std::memcpy(ys[i], y.data(), y.size() * sizeof(float));
    }
  }
  void attention(float* q, float* k, const float* v, float* kc, float* vc, int64_t n, int64_t pos0,
                 const AttentionShape& s, const RopeTable& rope, float* out) override {
    ref::rope(q, n, s.heads, s.head_dim, pos0, rope);
    ref::rope(k, n, s.kv_heads, s.head_dim, pos0, rope);
    ref::attention(q, k, v, kc, vc, n, pos0, s.heads, s.kv_heads, s.head_dim, s.sliding_window, out);
  }
};

}  // namespace

std::unique_ptr<Backend> make_ref_backend() { return std::make_unique<RefBackend>(); }

}  // namespace qforge
