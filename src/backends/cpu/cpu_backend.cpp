// backends/cpu/cpu_backend.cpp — the "cpu" backend: host memory, threaded SIMD linear layers and
// attention. The cheap input transforms (rmsnorm, swiglu) and rope reuse the reference code;
// the matrix work is in linear_cpu.cpp / quant_linear*.cpp and attention_cpu.cpp. prepare() repacks
// q4_0 / q8_0 linears into the row-interleaved layout that decode and prefill then read (gguf_interleaved.h;
// QFORGE_CPU_REPACK=0 off) and releases the original bytes (the copy holds the same codes and scales).
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "backends/cpu/gguf_interleaved.h"

#include "backends/host_backend.h"
#include "backends/ref/ref_ops.h"
#include "core/thread_pool.h"

namespace qforge {
namespace cpu {
void linear(const Linear& l, const float* x, int64_t n, float* y);
void attention(const float* q, const float* k, const float* v, float* k_cache, float* v_cache, int64_t n,
               int64_t pos0, int64_t heads, int64_t kv_heads, int64_t head_dim, int64_t sliding_window, float* out);
}  // namespace cpu

namespace {

class CpuBackend final : public HostBackend {
 public:
  std::string_view name() const override { return "cpu"; }
  void set_model_part(const ModelPart& part) override { part_ = part; }

  // q4_0 / q8_0 linears of this backend's part get an interleaved copy that every linear() call reads
  // (Linear::backend_data owns it). The copy holds the same codes and scales, so the QuantWeight's bytes
  // are released once every copy exists (Linear::released(), which also marks the linears that have a copy:
  // shape and format stay; only this backend can run them). Releasing each original as soon as its copy was
  // made would cap the extra memory at one matrix, but decoded 8% slower (TinyLlama q8_0, 22.8 / 23.6 vs
  // 25.7 / 26.2 tok/s, alternating runs; likely the copies landing on the freed pages); so prepare() still
  // briefly holds both, and the steady state holds the copies only.
  void prepare(ModelWeights& w, const ModelConfig&) override {
    if (!cpu_quant::interleaved_repack_enabled()) return;
    std::vector<Linear*> done;
    auto repack = [&](Linear& l) {
      // (Already released: repacked by an earlier cpu backend on these weights, which one_linear reads too.)
      if (l.released() || !cpu_quant::interleavable(l.qweight.format) || l.qweight.cols % 32 != 0) return;
      auto p = std::make_shared<cpu_quant::GgufInterleaved>(cpu_quant::repack_interleaved(l.qweight));
      l.replaced_bytes = p->nbytes;
      l.backend_data = p;
      done.push_back(&l);
    };
    for (int64_t i = 0; i < int64_t(w.layers.size()); ++i) {
      if (i < part_.layer_begin || i >= part_.layer_end) continue;
      auto& L = w.layers[size_t(i)];
      for (Linear* l : {&L.q, &L.k, &L.v, &L.o, &L.gate, &L.up, &L.down}) repack(*l);
    }
    if (part_.head) repack(w.lm_head);
    for (Linear* l : done) l->qweight.data = Tensor();
  }

  void embed(const Tensor& t, const int32_t* ids, int64_t n, float* out) override { ref::embed(t, ids, n, out); }

  void linear(std::span<const Linear* const> ls, const LinearInput& in, int64_t n, std::span<float* const> ys,
              bool accumulate) override {
    const int64_t dim = ls[0]->in;
    const float* x = in.x;
    if (in.rms_weight || in.up) {
      input_.resize(size_t(n * dim));
      if (in.rms_weight) {
        ref::rmsnorm(in.x, *in.rms_weight, n, dim, in.eps, input_.data());
      } else {
        ThreadPool::global().parallel_for(n * dim, 1 << 14, [&](int64_t a, int64_t b) {
          ref::swiglu(in.x + a, in.up + a, b - a, input_.data() + a);
        });
      }
      x = input_.data();
    }
    for (size_t i = 0; i < ls.size(); ++i) {
      if (!accumulate) {
        one_linear(*ls[i], x, n, ys[i]);
        continue;
      }
      out_.resize(size_t(n * ls[i]->out));
      one_linear(*ls[i], x, n, out_.data());
      ref::add(ys[i], out_.data(), n * ls[i]->out);
    }
  }

  void attention(float* q, float* k, const float* v, float* kc, float* vc, int64_t n, int64_t pos0,
                 const AttentionShape& s, const RopeTable& rope, float* out) override {
    ref::rope(q, n, s.heads, s.head_dim, pos0, rope);
    ref::rope(k, n, s.kv_heads, s.head_dim, pos0, rope);
    cpu::attention(q, k, v, kc, vc, n, pos0, s.heads, s.kv_heads, s.head_dim, s.sliding_window, out);
  }

 private:
  void one_linear(const Linear& l, const float* x, int64_t n, float* y) {
    if (l.released()) {  // the interleaved q4_0 / q8_0 copy (decode and prefill); only the cpu backend releases
      cpu_quant::interleaved_linear(*static_cast<const cpu_quant::GgufInterleaved*>(l.backend_data.get()), x, n, y,
                                    cpu_quant::best_isa());
      if (l.bias.defined())
        for (int64_t t = 0; t < n; ++t) ref::add(y + t * l.out, l.bias.data<float>(), l.out);
      return;
    }
    cpu::linear(l, x, n, y);
  }

  ModelPart part_;
  std::vector<float> input_, out_;  // reused scratch for transformed inputs / residual outputs
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend() { return std::make_unique<CpuBackend>(); }

}  // namespace qforge
