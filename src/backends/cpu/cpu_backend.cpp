// backends/cpu/cpu_backend.cpp — the "cpu" backend: host memory, threaded SIMD linear layers and
// attention; the cheap element-wise ops (norm, rope, swiglu, add) reuse the reference code.
#include <cstring>

#include "backends/backend.h"
#include "backends/ref/ref_ops.h"
#include "core/thread_pool.h"

namespace qforge {
namespace cpu {
void linear(const Linear& l, const float* x, int64_t n, float* y);
void attention(const float* q, const float* k, const float* v, float* k_cache, float* v_cache, int64_t n,
               int64_t pos0, int64_t heads, int64_t kv_heads, int64_t head_dim, int64_t sliding_window, float* out);
}  // namespace cpu

namespace {

class CpuBackend final : public Backend {
 public:
  std::string_view name() const override { return "cpu"; }
  std::shared_ptr<float> alloc(int64_t n, MemCategory cat) override {
    auto p = host_alloc(size_t(n) * sizeof(float), cat, true);
    return std::shared_ptr<float>(p, reinterpret_cast<float*>(p.get()));
  }
  void to_host(const float* s, float* d, int64_t n) override { std::memcpy(d, s, size_t(n) * 4); }
  void from_host(const float* s, float* d, int64_t n) override { std::memcpy(d, s, size_t(n) * 4); }
  void embed(const Tensor& t, const int32_t* ids, int64_t n, float* out) override { ref::embed(t, ids, n, out); }
  void linear(const Linear& l, const float* x, int64_t n, float* y) override { cpu::linear(l, x, n, y); }
  void rmsnorm(const float* x, const Tensor& w, int64_t n, int64_t d, float eps, float* y) override {
    ref::rmsnorm(x, w, n, d, eps, y);
  }
  void rope(float* x, int64_t n, int64_t h, int64_t hd, int64_t pos0, const RopeTable& t) override {
    ref::rope(x, n, h, hd, pos0, t);
  }
  void attention(const float* q, const float* k, const float* v, float* kc, float* vc, int64_t n, int64_t pos0,
                 int64_t h, int64_t kvh, int64_t hd, int64_t sw, float* out) override {
    cpu::attention(q, k, v, kc, vc, n, pos0, h, kvh, hd, sw, out);
  }
  void swiglu(const float* g, const float* u, int64_t n, float* out) override {
    ThreadPool::global().parallel_for(n, 1 << 14, [&](int64_t a, int64_t b) { ref::swiglu(g + a, u + a, b - a, out + a); });
  }
  void add(float* x, const float* y, int64_t n) override { ref::add(x, y, n); }
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend() { return std::make_unique<CpuBackend>(); }

}  // namespace qforge
