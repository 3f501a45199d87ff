// src/backends/cpu/q4_0_interleaved.cpp — the q4_0 row-interleaving repack (layout in q4_0_interleaved.h)
// and the driver of its decode kernels: activation rows quantized once to int8 (natural block order),
// groups of 8 rows threaded over ThreadPool::global() so that each thread reads one sequential stream.
#include "backends/cpu/q4_0_interleaved.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "qforge/memory.h"
#include "qforge/status.h"
#include "quant/quant_codecs.h"

namespace qforge::cpu_quant {

Q4_0Interleaved repack_q4_0(const QuantWeight& w) {
  if (w.format != QuantFormat::Q4_0 || w.cols % 32 != 0 || !w.data.defined())
    throw Error("repack_q4_0: weight is not q4_0 with whole blocks of 32 columns");
  Q4_0Interleaved p;
  p.rows = w.rows;
  p.cols = w.cols;
  p.groups = (w.rows + kQ4Interleave - 1) / kQ4Interleave;
  const int64_t nb = w.cols / 32;
  p.nbytes = size_t(p.groups * nb * kQ4GroupBlockBytes);
  // A backend copy beside the QuantWeight (which prefill still reads): accounted as "other", not as
  // weights, so that the weight count stays what the model holds; it shows in the host total and RSS.
  p.bytes = host_alloc(std::max<size_t>(p.nbytes, 1), MemCategory::Other, true);  // zero: padded rows
  const auto* src = static_cast<const quant_detail::BlockQ4_0*>(w.data.raw());
  uint8_t* dst = p.bytes.get();
  ThreadPool::global().parallel_for(p.groups, 16, [&](int64_t g0, int64_t g1) {
    for (int64_t g = g0; g < g1; ++g)
      for (int64_t i = 0; i < kQ4Interleave && g * kQ4Interleave + i < w.rows; ++i) {
        const quant_detail::BlockQ4_0* row = src + (g * kQ4Interleave + i) * nb;
        for (int64_t b = 0; b < nb; ++b) {
          uint8_t* gb = dst + (g * nb + b) * kQ4GroupBlockBytes;
          std::memcpy(gb + 2 * i, &row[b].d, 2);
          std::memcpy(gb + 16 + 16 * i, row[b].qs, 16);
        }
      }
  });
  return p;
}

void interleaved_block(const Q4_0Interleaved& p, int64_t r, int64_t b, uint16_t& d, uint8_t qs[16]) {
  const int64_t nb = p.cols / 32, g = r / kQ4Interleave, i = r % kQ4Interleave;
  const uint8_t* gb = p.bytes.get() + (g * nb + b) * kQ4GroupBlockBytes;
  std::memcpy(&d, gb + 2 * i, 2);
  std::memcpy(qs, gb + 16 + 16 * i, 16);
}

bool q4_0_repack_enabled() {
  static const bool on = [] {
    const char* e = std::getenv("QFORGE_CPU_Q4_0_REPACK");
    return best_isa() != Isa::Scalar && !(e && std::string(e) == "0");
  }();
  return on;
}

void q4_0_interleaved_linear(const Q4_0Interleaved& p, const float* x, int64_t n_tokens, float* y, Isa isa) {
  if ((isa != Isa::Avx512 && isa != Isa::Avx2) || !isa_supported(isa))
    throw Error("q4_0_interleaved_linear: this CPU has no " + std::string(isa_name(isa)) + " support");
  if (p.rows == 0 || n_tokens == 0) return;
  const int64_t K = p.cols, nb = K / 32;
  if (K == 0) {
    std::fill(y, y + p.rows * n_tokens, 0.0f);
    return;
  }
  const Int8Act& act = quantize_act(x, n_tokens, K, false, isa);
  Q4x8Args a;
  a.data = p.bytes.get();
  a.rows = p.rows;
  a.nb = nb;
  a.xq = act.q.data();
  a.dx = act.d.data();
  a.dsum = act.dsum.data();
  a.n_tokens = n_tokens;
  a.y = y;
  // A chunk streams >= ~256 KB of weights (one token).
  const int64_t group_bytes = nb * kQ4GroupBlockBytes;
  const int64_t grain = std::max<int64_t>(1, (256 << 10) / group_bytes);
  ThreadPool::global().parallel_for(p.groups, grain, [&](int64_t g0, int64_t g1) {
    if (isa == Isa::Avx512) q4x8_groups_avx512(a, g0, g1);
    else q4x8_groups_avx2(a, g0, g1);
  });
}

}  // namespace qforge::cpu_quant
