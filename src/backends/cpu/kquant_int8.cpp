// src/backends/cpu/kquant_int8.cpp — the shared part of K-quant prefill with int8 activations (kquant_int8.h):
// the activation quantizer per super-block, the half-block sums the lane kernels read, their input and dispatch
// predicate, and the scalar reference every kernel (kquant_amx.cpp, kquant_avx512.cpp, kquant_avx2.cpp) matches
// bit for bit.
#include "backends/cpu/kquant_int8.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

#include "backends/cpu/gguf_interleaved.h"
#include "qforge/status.h"
#include "quant/quant_codecs.h"

namespace qforge::cpu_quant {

using quant_detail::KQuantInts;

bool kquant_int8_format(QuantFormat f) {
  return f == QuantFormat::Q2_K || f == QuantFormat::Q3_K || f == QuantFormat::Q4_K || f == QuantFormat::Q5_K ||
         f == QuantFormat::Q6_K;
}

namespace {
constexpr int64_t kSuper = 256;
}  // namespace

bool kquant_has_min(QuantFormat f) { return f == QuantFormat::Q2_K || f == QuantFormat::Q4_K || f == QuantFormat::Q5_K; }

void kquant_check_shape(const QuantWeight& w, const char* who) {
  if (!kquant_int8_format(w.format))
    throw Error(std::string(who) + ": " + std::string(quant_traits(w.format).name) + " is not a K-quant format");
  if (w.cols % kSuper != 0)
    throw Error(std::string(who) + ": row length " + std::to_string(w.cols) + " is not whole super-blocks of 256");
}

const uint8_t* kquant_super_block(const QuantWeight& w, int64_t r, int64_t sb) {
  const int64_t nsb = w.cols / kSuper, row_bytes = int64_t(w.data.nbytes()) / w.rows;
  return static_cast<const uint8_t*>(w.data.raw()) + r * row_bytes + sb * (row_bytes / nsb);
}

bool kquant_int8_prefill_enabled() {
  static const bool on = [] {
    const char* e = std::getenv("QFORGE_CPU_KQUANT_INT8");
    return !(e && std::string(e) == "0");
  }();
  return on;
}

bool kquant_amx_applies(const QuantWeight& w, int64_t n_tokens) {
  return kquant_int8_prefill_enabled() && kquant_int8_format(w.format) && w.cols % kSuper == 0 && w.cols > 0 && n_tokens >= kKQuantAmxMinTokens &&
         amx_available();
}

void quantize_act_k(const float* x, int64_t n, int64_t K, KQuantAct& a) {
  const int64_t nsb = K / kSuper;
  a.q.resize(size_t(n * K));
  a.d.resize(size_t(n * nsb));
  for (int64_t t = 0; t < n; ++t)
    for (int64_t sb = 0; sb < nsb; ++sb) {
      const float* src = x + t * K + sb * kSuper;
      float amax = 0.0f;
      for (int64_t i = 0; i < kSuper; ++i) amax = std::max(amax, std::fabs(src[i]));
      const float d = amax / 127.0f, id = d > 0.0f ? 1.0f / d : 0.0f;
      int8_t* q = a.q.data() + t * K + sb * kSuper;
      for (int64_t i = 0; i < kSuper; ++i) q[i] = int8_t(std::clamp(std::nearbyint(src[i] * id), -127.0f, 127.0f));
      a.d[size_t(t * nsb + sb)] = d;
    }
}

void kquant_half_sums(const KQuantAct& a, int64_t n, int64_t K, std::vector<int32_t>& bs) {
  bs.resize(size_t(n * K / 32));
  for (int64_t t = 0; t < n; ++t)
    for (int64_t h = 0; h < K / 32; ++h) {
      const int8_t* q = a.q.data() + t * K + 32 * h;
      int32_t s0 = 0, s1 = 0;
      for (int i = 0; i < 16; ++i) s0 += q[i], s1 += q[16 + i];
      bs[size_t(t * (K / 32) + h)] = int32_t(uint16_t(int16_t(s0))) | s1 << 16;
    }
}

bool kquant_lane_applies(const QuantWeight& w, int64_t n_tokens, Isa isa) {
  return kquant_int8_prefill_enabled() && kquant_int8_format(w.format) && w.cols % kSuper == 0 && w.cols > 0 &&
         n_tokens >= kKQuantInt8MinTokens && best_isa() == isa;
}

bool kquant_lane_input(const char* who, const QuantWeight& w, const float* x, int64_t n_tokens, float* y,
                       KQuantLaneInput& in) {
  kquant_check_shape(w, who);
  if (w.rows == 0 || n_tokens == 0) return false;
  const int64_t K = w.cols;
  quantize_act_k(x, n_tokens, K, in.act);
  in.x.resize(size_t(n_tokens * K / 4));
  std::memcpy(in.x.data(), in.act.q.data(), size_t(n_tokens * K));
  kquant_half_sums(in.act, n_tokens, K, in.bs);
  in.w = &w;
  in.n = n_tokens;
  in.y = y;
  return true;
}

void kquant_linear_int8_ref(const QuantWeight& w, const float* x, int64_t n_tokens, float* y) {
  kquant_check_shape(w, "kquant_linear_int8_ref");
  const int64_t N = w.rows, K = w.cols, nsb = K / kSuper;
  const bool mins = kquant_has_min(w.format);
  KQuantAct a;
  quantize_act_k(x, n_tokens, K, a);
  KQuantInts ki;
  for (int64_t r = 0; r < N; ++r)
    for (int64_t t = 0; t < n_tokens; ++t) {
      float acc = 0.0f;
      for (int64_t sb = 0; sb < nsb; ++sb) {
        quant_detail::kquant_ints(w.format, kquant_super_block(w, r, sb), ki);
        const int8_t* q = a.q.data() + t * K + sb * kSuper;
        int32_t sp = 0, sm = 0;
        for (int i = 0; i < kSuper; ++i) {
          sp += int32_t(ki.p[i]) * q[i];
          sm += int32_t(ki.m[i]) * q[i];
        }
        const float dx = a.d[size_t(t * nsb + sb)];
        acc = std::fma(float(sp), ki.d * dx, acc);
        if (mins) acc = std::fma(-float(sm), ki.dmin * dx, acc);
      }
      y[t * N + r] = acc;
    }
}

}  // namespace qforge::cpu_quant

