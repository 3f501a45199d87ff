// src/backends/cpu/quant_linear.cpp — driver of the optimised CPU quantized linear: picks the ISA level
// (AVX-512 > AVX2 > scalar) and the activation mode, lays the activations out in kernel order (or
// quantizes them to int8 blocks for the GGUF integer-dot path), threads output rows over
// ThreadPool::global() and adds the column tail (< 32) that the SIMD kernels leave. The scalar level
// is the generic path: 256-wide tiles dequantized by the reference dequantize_segment, f32 dot. K-quant
// prompts of 4+ tokens go to the int8 prefill kernels first (kquant_int8.h: AMX, AVX-512 VNNI or AVX2).
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "backends/cpu/cpu_kernels.h"
#include "backends/cpu/kquant_int8.h"
#include "backends/cpu/quant_linear_kernels.h"
#include "backends/quant_linear.h"
#include "core/thread_pool.h"
#include "qforge/status.h"
#include "quant/quant_codecs.h"

namespace qforge {

namespace cpu_quant {

std::string_view isa_name(Isa isa) {
  switch (isa) {
    case Isa::Avx512: return "avx512";
    case Isa::Avx2: return "avx2";
    default: return "scalar";
  }
}

bool isa_supported(Isa isa) {
  // The integer kernels' AVX-512 level is the float kernels' plus VNNI.
  static const bool avx512 = cpu::cpu_has_avx512() && __builtin_cpu_supports("avx512vnni");
  switch (isa) {
    case Isa::Avx512: return avx512;
    case Isa::Avx2: return cpu::cpu_has_avx2();
    default: return true;
  }
}

Isa isa_cap() {
  static const Isa cap = [] {
    const char* e = std::getenv("QFORGE_CPU_ISA");
    const std::string v = e ? e : "";
    if (v == "scalar") return Isa::Scalar;
    if (v == "avx2") return Isa::Avx2;
    if (!v.empty() && v != "avx512") throw Error("QFORGE_CPU_ISA must be scalar, avx2 or avx512 (got \"" + v + "\")");
    return Isa::Avx512;
  }();
  return cap;
}

Isa best_isa() {
  static const Isa isa = [] {
    const Isa hw = isa_supported(Isa::Avx512) ? Isa::Avx512 : isa_supported(Isa::Avx2) ? Isa::Avx2 : Isa::Scalar;
    return std::min(hw, isa_cap());
  }();
  return isa;
}

bool int8_act_supported(QuantFormat f, Isa isa) {
  return (isa == Isa::Avx512 || isa == Isa::Avx2) &&
         (f == QuantFormat::Q4_0 || f == QuantFormat::Q8_0 || f == QuantFormat::Q4_1 || f == QuantFormat::Q5_0 ||
          f == QuantFormat::Q5_1 || f == QuantFormat::Q4_K || f == QuantFormat::Q5_K || f == QuantFormat::Q6_K ||
          f == QuantFormat::Q3_K || f == QuantFormat::Q2_K);  // q2_k: the AVX2 kernel at both levels
}

ActMode default_act_mode(QuantFormat f, Isa isa, int64_t n_tokens) {
  return int8_act_supported(f, isa) && n_tokens < 4 ? ActMode::Int8 : ActMode::F32;
}

void quantize_act_row_scalar(const float* x, int64_t K, bool pairs, int8_t* q, float* d, float* dsum) {
  const int64_t nb = K / 32;
  int8_t blk[32];
  for (int64_t b = 0; b < nb; ++b) {
    const float* src = x + b * 32;
    float amax = 0.0f;
    for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(src[i]));
    const float db = amax / 127.0f, id = db > 0.0f ? 1.0f / db : 0.0f;
    int32_t sum = 0;
    for (int i = 0; i < 32; ++i) {
      blk[i] = int8_t(std::nearbyint(src[i] * id));
      sum += blk[i];
    }
    d[b] = act_block_scale(amax);
    dsum[b] = d[b] * float(sum);
    if (pairs && (b & 1) == 0 && b + 1 < nb) {  // A0-15 B0-15 A16-31 B16-31
      std::copy(blk, blk + 16, q + b * 32);
      std::copy(blk + 16, blk + 32, q + b * 32 + 32);
    } else if (pairs && (b & 1) == 1) {
      std::copy(blk, blk + 16, q + (b - 1) * 32 + 16);
      std::copy(blk + 16, blk + 32, q + (b - 1) * 32 + 48);
    } else {
      std::copy(blk, blk + 32, q + b * 32);
    }
  }
}

namespace {

constexpr int64_t kTile = 256;

void dot_tokens_scalar(const float* w, const float* x, int64_t ldx, int64_t n_tokens, int64_t len, float* acc) {
  for (int64_t t = 0; t < n_tokens; ++t) {
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    const float* xt = x + t * ldx;
    int64_t k = 0;
    for (; k + 4 <= len; k += 4) {
      s0 += w[k] * xt[k];
      s1 += w[k + 1] * xt[k + 1];
      s2 += w[k + 2] * xt[k + 2];
      s3 += w[k + 3] * xt[k + 3];
    }
    for (; k < len; ++k) s0 += w[k] * xt[k];
    acc[t] += (s0 + s1) + (s2 + s3);
  }
}

using DotFn = void (*)(const float*, const float*, int64_t, int64_t, int64_t, float*);

// Generic rows: reference tile dequantize + dot (any format, any shape).
void generic_rows(const QuantWeight& w, const float* x, int64_t n_tokens, float* y, int64_t r0, int64_t r1, DotFn dot) {
  const int64_t N = w.rows, K = w.cols;
  alignas(64) float tile[kTile];
  std::vector<float> acc(static_cast<size_t>(n_tokens));
  for (int64_t r = r0; r < r1; ++r) {
    std::fill(acc.begin(), acc.end(), 0.0f);
    for (int64_t k0 = 0; k0 < K; k0 += kTile) {
      const int64_t len = std::min(kTile, K - k0);
      dequantize_segment(w, r, k0, len, tile);
      dot(tile, x + k0, K, n_tokens, len, acc.data());
    }
    for (int64_t t = 0; t < n_tokens; ++t) y[t * N + r] = acc[size_t(t)];
  }
}

bool nibble_permuted(QuantFormat f) {
  return f == QuantFormat::NF4 || f == QuantFormat::FP4 || f == QuantFormat::NVFP4 || f == QuantFormat::MXFP4;
}

// Can the SIMD kernels take this weight? (else the generic path runs).
bool fast_path_ok(const QuantWeight& w) {
  switch (w.format) {
    case QuantFormat::NF4: case QuantFormat::FP4:
      return w.cols % 32 == 0;  // every chunk of 32 then lies in one absmax block (blocks are >= 32, 2^n)
    case QuantFormat::INT4: {
      const int32_t* gi = w.g_idx.data<int32_t>();
      const int64_t g = w.params.blocksize;
      if (g % 8 != 0) return false;
      for (int64_t k = 0; k < w.cols; ++k)  // act-order (permuted g_idx) checkpoints use the generic path
        if (gi[k] != int32_t(k / g)) return false;
      return true;
    }
    case QuantFormat::None: case QuantFormat::Count: return false;
    default: return true;
  }
}

// The chunk the kernels decode a row in, 128 (avx512) or 64 (avx2) weights per load (KernelArgs::wide),
// or 0 for the 32-weight decoders.
int wide_chunk(const QuantWeight& w, Isa isa, ActMode act) {
  const int c = isa == Isa::Avx512 ? 128 : isa == Isa::Avx2 ? 64 : 0;
  if (c == 0 || act != ActMode::F32 || w.cols % c != 0) return 0;
  if (w.format == QuantFormat::Q4_K) return w.cols % 256 != 0 ? 0 : isa == Isa::Avx512 ? 256 : 64;  // super-blocks / groups
  if (w.format == QuantFormat::Q6_K) return isa == Isa::Avx512 ? 256 : 64;  // super-blocks / two quarters, plain order
  const int64_t b = w.params.blocksize;
  if (w.format == QuantFormat::NF4 || w.format == QuantFormat::FP4) return b >= 64 && (b & (b - 1)) == 0 ? c : 0;
  return w.format == QuantFormat::NVFP4 || w.format == QuantFormat::MXFP4 ? c : 0;
}

enum class XOrder { Plain, Nibble32, Wide, WideLow, Q4K };

// x [n, K] -> [n, ldk] in kernel order, zero padded: Nibble32 chunks of 32 hold the even elements
// then the odd ones; Wide chunks of `wide` hold element 8 j + (q ^ 1) at (wide / 8) q + j (WideLow:
// element 8 j + q, for codes whose low nibble is the even element).
std::vector<float> kernel_order_x(const float* x, int64_t n, int64_t K, int64_t ldk, int64_t k_main, XOrder order,
                                  int wide) {
  std::vector<float> xk(size_t(n * ldk), 0.0f);
  for (int64_t t = 0; t < n; ++t) {
    const float* src = x + t * K;
    float* dst = xk.data() + t * ldk;
    if (order == XOrder::Plain) {
      std::copy(src, src + K, dst);
      continue;
    }
    if (order == XOrder::Q4K && wide == 256) {  // DecQ4_Kx256 (avx512): half h, vector q, lane l
      for (int64_t k = 0; k < k_main; k += 256)
        for (int h = 0; h < 2; ++h)
          for (int q = 0; q < 8; ++q)
            for (int l = 0; l < 16; ++l)
              dst[k + 128 * h + 16 * q + l] = src[k + 128 * h + 64 * (l / 8) + 4 * (l % 8) + q / 2 + 32 * (q & 1)];
      std::copy(src + k_main, src + K, dst + k_main);
      continue;
    }
    if (order == XOrder::Q4K) {  // DecQ4_Kx64 (avx2): group of 64, vector q, lane l
      for (int64_t k = 0; k < k_main; k += 64)
        for (int q = 0; q < 8; ++q)
          for (int l = 0; l < 8; ++l) dst[k + 8 * q + l] = src[k + 4 * l + q / 2 + 32 * (q & 1)];
      std::copy(src + k_main, src + K, dst + k_main);
      continue;
    }
    if (order == XOrder::Wide || order == XOrder::WideLow) {
      const int flip = order == XOrder::Wide ? 1 : 0, lanes = wide / 8;
      for (int64_t k = 0; k < k_main; k += wide)
        for (int q = 0; q < 8; ++q)
          for (int j = 0; j < lanes; ++j) dst[k + lanes * q + j] = src[k + 8 * j + (q ^ flip)];
      std::copy(src + k_main, src + K, dst + k_main);
      continue;
    }
    for (int64_t k = 0; k < k_main; k += 32)
      for (int i = 0; i < 16; ++i) {
        dst[k + i] = src[k + 2 * i];
        dst[k + 16 + i] = src[k + 2 * i + 1];
      }
    std::copy(src + k_main, src + K, dst + k_main);
  }
  return xk;
}

}  // namespace

// Per token: quantize_act_row_* (decode has one to three tokens, so no threads).
Int8Act& quantize_act(const float* x, int64_t n, int64_t K, bool q4_pairs, Isa isa) {
  thread_local Int8Act a;
  const int64_t nb = K / 32;
  a.q.resize(size_t(n * K));
  a.d.resize(size_t(n * nb));
  a.dsum.resize(size_t(n * nb));
  for (int64_t t = 0; t < n; ++t) {
    int8_t* q = a.q.data() + t * K;
    float* d = a.d.data() + t * nb;
    float* ds = a.dsum.data() + t * nb;
    if (isa == Isa::Avx512) quantize_act_row_avx512(x + t * K, K, q4_pairs, q, d, ds);
    else if (isa == Isa::Avx2 && !q4_pairs) quantize_act_row_avx2(x + t * K, K, q, d, ds);
    else quantize_act_row_scalar(x + t * K, K, q4_pairs, q, d, ds);
  }
  return a;
}

void quant_linear_cpu_isa(const QuantWeight& w, const float* x, int64_t n_tokens, float* y, Isa isa, ActMode act) {
  QF_CHECK(w.format != QuantFormat::None, "quant_linear_cpu: weight is not quantized");
  if (!isa_supported(isa))
    throw Error("quant_linear_cpu: this CPU has no " + std::string(isa_name(isa)) + " support");
  if (act == ActMode::Int8 && !int8_act_supported(w.format, isa))
    throw Error("quant_linear_cpu: no int8-activation kernel for " + std::string(quant_traits(w.format).name) +
                " at " + std::string(isa_name(isa)));
  const int64_t N = w.rows, K = w.cols;
  if (N == 0 || n_tokens == 0) return;
  if (K == 0) {
    std::fill(y, y + N * n_tokens, 0.0f);
    return;
  }
  const int64_t row_bytes = std::max<int64_t>(1, int64_t(w.storage_bytes()) / N);
  if (isa == Isa::Scalar || !fast_path_ok(w)) {
    const DotFn dot = isa == Isa::Scalar ? dot_tokens_scalar : cpu_detail::dot_tokens_avx2;
    const int64_t grain = std::max<int64_t>(8, (256 << 10) / row_bytes);
    ThreadPool::global().parallel_for(N, grain, [&](int64_t r0, int64_t r1) { generic_rows(w, x, n_tokens, y, r0, r1, dot); });
    return;
  }

  cpu_quant::KernelArgs a;
  a.format = w.format;
  a.rows = N;
  a.cols = K;
  a.block = w.params.blocksize;
  a.double_quant = w.params.double_quant;
  a.per_channel = w.params.per_channel;
  a.data = static_cast<const uint8_t*>(w.data.raw());
  a.data_bytes_per_weight = double(w.data.nbytes()) / double(std::max<int64_t>(1, w.rows * w.cols));
  a.scales = w.scales.defined() ? static_cast<const uint8_t*>(w.scales.raw()) : nullptr;
  a.scales2 = w.scales2.defined() ? w.scales2.data<float>() : nullptr;
  a.zeros = w.zeros.defined() ? static_cast<const uint32_t*>(w.zeros.raw()) : nullptr;
  a.offset = w.offset;
  a.lut16 = w.format == QuantFormat::NF4   ? quant_detail::kNf4Values.data()
            : w.format == QuantFormat::FP4 ? quant_detail::kFp4Values.data()
                                           : quant_detail::kE2M1Values.data();
  a.dmap8 = quant_detail::kDynamicMap8.data();
  a.e4m3 = quant_detail::fp8_table(quant_detail::Fp8Kind::E4M3).data();
  a.n_tokens = n_tokens;
  a.act = act;
  a.y = y;
  const bool int4 = w.format == QuantFormat::INT4;
  a.wide = wide_chunk(w, isa, act);
  a.k_main = int4 ? K : K / 32 * 32;  // wide: K % wide == 0
  a.ldk = (K + 31) / 32 * 32;
  std::vector<float> xk;
  if (act == ActMode::Int8) {
    a.ldk = K;  // GGUF rows are whole blocks of 32
    const Int8Act& xq = quantize_act(x, n_tokens, K, w.format == QuantFormat::Q4_0 && isa == Isa::Avx512, isa);
    a.xq = xq.q.data();
    a.xq_scale = xq.d.data();
    a.xq_dsum = xq.dsum.data();
  } else {
    const XOrder order = w.format == QuantFormat::Q6_K ? XOrder::Plain
                         : a.wide ? (w.format == QuantFormat::Q4_K                                     ? XOrder::Q4K
                                   : w.format == QuantFormat::NVFP4 || w.format == QuantFormat::MXFP4 ? XOrder::WideLow
                                                                                                      : XOrder::Wide)
                         : nibble_permuted(w.format) ? XOrder::Nibble32
                                                     : XOrder::Plain;
    xk = kernel_order_x(x, n_tokens, K, a.ldk, a.k_main, order, a.wide);
    a.xk = xk.data();
  }
  // Threads take units of rows (int4: one vector of output rows); a chunk streams >= ~256 KB of
  // weights when decoding one token, less when several tokens share the weights.
  // Integer kernels: groups of kIntRowGroup rows share each activation load (a chunk is whole groups).
  const int64_t unit = int4 ? (isa == Isa::Avx512 ? 16 : 8) : act == ActMode::Int8 ? kIntRowGroup : 1;
  const int64_t n_units = int4 ? N / unit : (N + unit - 1) / unit;  // int8 groups: the last may be short
  const int64_t token_share = std::clamp<int64_t>(n_tokens, 1, 16);
  const int64_t grain = std::max<int64_t>(1, (256 << 10) / (row_bytes * unit * token_share));
  const int64_t k_tail = K - a.k_main;
  ThreadPool::global().parallel_for(n_units, grain, [&](int64_t u0, int64_t u1) {
    const int64_t r0 = u0 * unit, r1 = std::min(N, u1 * unit);
    // An int8 format with no AVX-512 kernel (q2_k) runs the AVX2 one: same activations and layout.
    const bool ok = isa == Isa::Avx512
                        ? cpu_quant::rows_avx512(a, r0, r1) || (act == ActMode::Int8 && cpu_quant::rows_avx2(a, r0, r1))
                        : cpu_quant::rows_avx2(a, r0, r1);
    QF_CHECK(ok, "quant_linear_cpu: no kernel for this format");
    if (k_tail == 0) return;
    alignas(64) float tail[32];
    for (int64_t r = r0; r < r1; ++r) {
      dequantize_segment(w, r, a.k_main, k_tail, tail);
      for (int64_t t = 0; t < n_tokens; ++t) {
        float s = 0.0f;
        for (int64_t k = 0; k < k_tail; ++k) s += tail[k] * x[t * K + a.k_main + k];
        y[t * N + r] += s;
      }
    }
  });
  if (int4 && n_units * unit < N)  // int4 rows past the last whole vector
    generic_rows(w, x, n_tokens, y, n_units * unit, N, cpu_detail::dot_tokens_avx2);
}

}  // namespace cpu_quant

void quant_linear_cpu(const QuantWeight& w, const float* x, int64_t n_tokens, float* y) {
  if (cpu_quant::kquant_amx_applies(w, n_tokens)) return cpu_quant::kquant_linear_amx(w, x, n_tokens, y);
  if (cpu_quant::kquant_avx512_applies(w, n_tokens)) return cpu_quant::kquant_linear_avx512(w, x, n_tokens, y);
  if (cpu_quant::kquant_avx2_applies(w, n_tokens)) return cpu_quant::kquant_linear_avx2(w, x, n_tokens, y);
  const cpu_quant::Isa isa = cpu_quant::best_isa();
  cpu_quant::quant_linear_cpu_isa(w, x, n_tokens, y, isa, cpu_quant::default_act_mode(w.format, isa, n_tokens));
}

}  // namespace qforge
