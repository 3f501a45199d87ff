// backends/ref/ref_backend.cpp — the "ref" backend: host memory, scalar reference ops.
#include "backends/ref/ref_ops.h"

#include <cstring>

namespace qforge {
namespace {

class RefBackend final : public Backend {
 public:
  std::string_view name() const override { return "ref"; }
  std::shared_ptr<float> alloc(int64_t n, MemCategory cat) override {
    auto p = host_alloc(size_t(n) * sizeof(float), cat, true);
    return std::shared_ptr<float>(p, reinterpret_cast<float*>(p.get()));
  }
  void to_host(const float* s, float* d, int64_t n) override { std::memcpy(d, s, size_t(n) * 4); }
  void from_host(const float* s, float* d, int64_t n) override { std::memcpy(d, s, size_t(n) * 4); }
  void embed(const Tensor& t, const int32_t* ids, int64_t n, float* out) override { ref::embed(t, ids, n, out); }
  void linear(const Linear& l, const float* x, int64_t n, float* y) override { ref::linear(l, x, n, y); }
  void rmsnorm(const float* x, const Tensor& w, int64_t n, int64_t d, float eps, float* y) override {
    ref::rmsnorm(x, w, n, d, eps, y);
  }
  void rope(float* x, int64_t n, int64_t h, int64_t hd, int64_t pos0, const RopeTable& t) override {
    ref::rope(x, n, h, hd, pos0, t);
  }
  void attention(const float* q, const float* k, const float* v, float* kc, float* vc, int64_t n, int64_t pos0,
                 int64_t h, int64_t kvh, int64_t hd, int64_t sw, float* out) override {
    ref::attention(q, k, v, kc, vc, n, pos0, h, kvh, hd, sw, out);
  }
  void swiglu(const float* g, const float* u, int64_t n, float* out) override { ref::swiglu(g, u, n, out); }
  void add(float* x, const float* y, int64_t n) override { ref::add(x, y, n); }
};

}  // namespace

std::unique_ptr<Backend> make_ref_backend() { return std::make_unique<RefBackend>(); }

}  // namespace qforge
