// backends/cpu/linear_cpu.cpp — threaded linear layer: output rows split over the thread pool,
// each chunk computed by the AVX-512 or AVX2 tile kernel (or the scalar one); bf16 / f16 prompts of 16+
// tokens on AMX where the CPU has it (linear_amx.cpp); quantized weights go to the fused quantized
// kernels. Also the CPU feature checks.
#include "backends/cpu/cpu_kernels.h"
#include "backends/cpu/quant_linear_kernels.h"
#include "backends/quant_linear.h"
#include "core/thread_pool.h"
#include "model/weights.h"

namespace qforge::cpu {

bool cpu_has_avx2() {
  static const bool ok = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
  }();
  return ok;
}

bool cpu_has_avx512() {
  static const bool ok = [] {
    __builtin_cpu_init();
    return cpu_has_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  }();
  return ok;
}

void dot_tile_scalar(const void* w, DType wt, int64_t nrows, int64_t in, const float* x, int64_t n_tok, float* y,
                     int64_t ys) {
  for (int64_t r = 0; r < nrows; ++r)
    for (int64_t t = 0; t < n_tok; ++t) {
      float s = 0;
      for (int64_t i = 0; i < in; ++i) {
        int64_t k = r * in + i;
        float wv = wt == DType::F32    ? static_cast<const float*>(w)[k]
                   : wt == DType::BF16 ? bf16_to_f32(static_cast<const uint16_t*>(w)[k])
                                       : f16_to_f32(static_cast<const uint16_t*>(w)[k]);
        s += wv * x[t * in + i];
      }
      y[t * ys + r] = s;
    }
}

void linear(const Linear& l, const float* x, int64_t n, float* y) {
  if (l.quantized()) {
    require_weight_bytes(l, "cpu linear");
    quant_linear_cpu(l.qweight, x, n, y);
  } else if (const DType wt = l.weight.dtype(); n >= kAmxFloatMinTokens && (wt == DType::BF16 || wt == DType::F16) &&
             l.in % 32 == 0 && amx_bf16_available()) {  // (needs best_isa() Avx512: QFORGE_CPU_ISA caps it)
    linear_amx16(l.weight.raw(), wt, l.out, l.in, x, n, y);  // prefill on AMX tiles
  } else {
    const cpu_quant::Isa cap = cpu_quant::isa_cap();
    const auto tile = cpu_has_avx512() && cap >= cpu_quant::Isa::Avx512 ? dot_tile_avx512
                      : cpu_has_avx2() && cap >= cpu_quant::Isa::Avx2   ? dot_tile_avx2
                                                                        : dot_tile_scalar;
    const size_t esz = dtype_size(wt);
    const auto* w = static_cast<const char*>(l.weight.raw());
    // Grain: enough rows that a chunk streams a few hundred KB of weights.
    int64_t grain = std::max<int64_t>(16, (256 << 10) / std::max<int64_t>(1, l.in * int64_t(esz)));
    ThreadPool::global().parallel_for(l.out, grain, [&](int64_t r0, int64_t r1) {
      // Token blocks of 64 keep the x slice in cache while the rows stream.
      for (int64_t t0 = 0; t0 < n; t0 += 64) {
        int64_t nt = std::min<int64_t>(64, n - t0);
        const void* wr = w + r0 * l.in * int64_t(esz);
        tile(wr, wt, r1 - r0, l.in, x + t0 * l.in, nt, y + t0 * l.out + r0, l.out);
      }
    });
  }
  if (l.bias) {
    const float* b = l.bias.data<float>();
    for (int64_t t = 0; t < n; ++t)
      for (int64_t o = 0; o < l.out; ++o) y[t * l.out + o] += b[o];
  }
}

}  // namespace qforge::cpu
