// src/backends/cpu/gguf_interleaved.cpp — the q4_0 / q8_0 row-interleaving repack (layout in
// gguf_interleaved.h) and the driver of its kernels: activation rows quantized once to int8 (natural block order),
// groups of 8 rows threaded over ThreadPool::global() so that each thread reads one sequential stream.
#include "backends/cpu/gguf_interleaved.h"

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

GgufInterleaved repack_interleaved(const QuantWeight& w) {
  if (!interleavable(w.format) || w.cols % 32 != 0 || !w.data.defined())
    throw Error("repack_interleaved: weight is not q4_0 / q8_0 with whole blocks of 32 columns");
  const bool q8 = w.format == QuantFormat::Q8_0;
  GgufInterleaved p;
  p.format = w.format;
  p.rows = w.rows;
  p.cols = w.cols;
  p.groups = (w.rows + kRowGroup - 1) / kRowGroup;
  p.group_block_bytes = q8 ? kQ8GroupBlockBytes : kQ4GroupBlockBytes;
  const int64_t nb = w.cols / 32, gbb = p.group_block_bytes;
  const int64_t src_block = q8 ? int64_t(sizeof(quant_detail::BlockQ8_0)) : int64_t(sizeof(quant_detail::BlockQ4_0));
  const int64_t code_bytes = src_block - 2;  // after the fp16 scale: 16 nibble bytes or 32 int8
  p.nbytes = size_t(p.groups * nb * gbb);
  // Accounted as weights: the cpu backend releases the QuantWeight's bytes once its copies exist.
  p.bytes = host_alloc(std::max<size_t>(p.nbytes, 1), MemCategory::Weights, true);  // zero: padded rows
  const auto* src = static_cast<const uint8_t*>(w.data.raw());
  uint8_t* dst = p.bytes.get();
  ThreadPool::global().parallel_for(p.groups, 16, [&](int64_t g0, int64_t g1) {
    for (int64_t g = g0; g < g1; ++g)
      for (int64_t i = 0; i < kRowGroup && g * kRowGroup + i < w.rows; ++i) {
        const uint8_t* row = src + (g * kRowGroup + i) * nb * src_block;
        for (int64_t b = 0; b < nb; ++b) {
          uint8_t* gb = dst + (g * nb + b) * gbb;
          std::memcpy(gb + 2 * i, row + b * src_block, 2);  // the block's fp16 d comes first
          std::memcpy(gb + 16 + code_bytes * i, row + b * src_block + 2, size_t(code_bytes));
        }
      }
  });
  return p;
}

void interleaved_block(const GgufInterleaved& p, int64_t r, int64_t b, uint16_t& d, uint8_t* qs) {
  const int64_t nb = p.cols / 32, g = r / kRowGroup, i = r % kRowGroup;
  const int64_t code_bytes = (p.group_block_bytes - 16) / kRowGroup;
  const uint8_t* gb = p.bytes.get() + (g * nb + b) * p.group_block_bytes;
  std::memcpy(&d, gb + 2 * i, 2);
  std::memcpy(qs, gb + 16 + code_bytes * i, size_t(code_bytes));
}

bool interleaved_repack_enabled() {
  static const bool on = [] {
    const char* e = std::getenv("QFORGE_CPU_REPACK");
    if (!e) e = std::getenv("QFORGE_CPU_Q4_0_REPACK");  // the name before q8_0 was repacked too
    return best_isa() != Isa::Scalar && !(e && std::string(e) == "0");
  }();
  return on;
}

void interleaved_linear(const GgufInterleaved& p, const float* x, int64_t n_tokens, float* y, Isa isa,
                        bool allow_amx) {
  if ((isa != Isa::Avx512 && isa != Isa::Avx2) || !isa_supported(isa))
    throw Error("interleaved_linear: this CPU has no " + std::string(isa_name(isa)) + " support");
  if (p.rows == 0 || n_tokens == 0) return;
  if (allow_amx && isa == Isa::Avx512 && n_tokens >= kAmxMinTokens && amx_available()) {
    interleaved_linear_amx(p, x, n_tokens, y);
    return;
  }
  const int64_t K = p.cols, nb = K / 32;
  if (K == 0) {
    std::fill(y, y + p.rows * n_tokens, 0.0f);
    return;
  }
  const Int8Act& act = quantize_act(x, n_tokens, K, false, isa);
  GroupArgs a;
  a.data = p.bytes.get();
  a.rows = p.rows;
  a.nb = nb;
  a.xq = act.q.data();
  a.dx = act.d.data();
  a.dsum = act.dsum.data();
  a.n_tokens = n_tokens;
  a.y = y;
  // A chunk streams >= ~256 KB of weights (one token).
  const int64_t group_bytes = nb * p.group_block_bytes;
  const int64_t grain = std::max<int64_t>(1, (256 << 10) / group_bytes);
  const bool q8 = p.format == QuantFormat::Q8_0;
  ThreadPool::global().parallel_for(p.groups, grain, [&](int64_t g0, int64_t g1) {
    if (isa == Isa::Avx512) q8 ? q8x8_groups_avx512(a, g0, g1) : q4x8_groups_avx512(a, g0, g1);
    else q8 ? q8x8_groups_avx2(a, g0, g1) : q4x8_groups_avx2(a, g0, g1);
  });
}

}  // namespace qforge::cpu_quant
