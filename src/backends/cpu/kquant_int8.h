// src/backends/cpu/kquant_int8.h — prefill of GGUF K-quant weights (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K) with int8
// activations, as llama.cpp's K-quant dot products do: each token's activations are quantized to int8 per
// super-block of 256 (one f32 scale amax / 127, like ggml's Q8_K), the weights are taken in their integer form
// (quant_detail::kquant_ints: d * p - dmin * m), and a super-block's contribution d_x (d sum p q_x - dmin sum m q_x)
// is exact in int32 before one f32 step. The scalar reference (kquant_int8.cpp) and the kernels (AMX:
// kquant_amx.cpp; AVX-512 VNNI: kquant_avx512.cpp; AVX2: kquant_avx2.cpp) give bit-identical outputs: the same int32
// sums, then the same f32 operations in the same order.
#pragma once
#include <cstdint>
#include <vector>

#include "backends/cpu/quant_linear_kernels.h"
#include "qforge/quant.h"

namespace qforge::cpu_quant {

// Q2_K..Q6_K (the formats kquant_ints takes); which of them have a minimum term (Q2_K, Q4_K, Q5_K).
bool kquant_int8_format(QuantFormat f);
bool kquant_has_min(QuantFormat f);
// Throws qforge::Error naming `who` unless w is a K-quant weight of whole super-blocks.
void kquant_check_shape(const QuantWeight& w, const char* who);
// The bytes of super-block sb of row r.
const uint8_t* kquant_super_block(const QuantWeight& w, int64_t r, int64_t sb);
// QFORGE_CPU_KQUANT_INT8=0 turns both int8 prefill kernels off (K-quant prefill then runs on f32 tiles: A/B runs).
bool kquant_int8_prefill_enabled();
// The AMX path applies: a K-quant format, whole super-blocks per row, at least kKQuantAmxMinTokens tokens,
// and amx_available() (gguf_interleaved.h).
inline constexpr int64_t kKQuantAmxMinTokens = 16;
bool kquant_amx_applies(const QuantWeight& w, int64_t n_tokens);

// Activations [n, K] (K % 256 == 0) as int8 per super-block: q = round-half-even(x * (1 / d)), d = amax / 127.
struct KQuantAct {
  std::vector<int8_t> q;  // [n, K]
  std::vector<float> d;   // [n, K / 256]
};
void quantize_act_k(const float* x, int64_t n, int64_t K, KQuantAct& a);
// The lane kernels' half-block sums: bs [n][K / 32] dwords, each the int16 pair (sum of q over half-block 2j,
// over 2j + 1) of a block of 32.
void kquant_half_sums(const KQuantAct& a, int64_t n, int64_t K, std::vector<int32_t>& bs);

// y[n, rows] = x W^T through int8 activations: per token and row, over super-blocks in order,
// s = d_w * d_x, acc = fma(f32(sum p q_x), s, acc), then acc = fma(-f32(sum m q_x), dmin_w * d_x, acc).
void kquant_linear_int8_ref(const QuantWeight& w, const float* x, int64_t n_tokens, float* y);
// The same on AMX int8 tiles (kquant_amx.cpp) (throws qforge::Error without AMX, or for a weight kquant_amx_applies rejects
// for shape or format reasons; any n_tokens).
void kquant_linear_amx(const QuantWeight& w, const float* x, int64_t n_tokens, float* y);

// What the lane kernels (kquant_avx512.cpp, kquant_avx2.cpp) read: the int8 activations 4 to a dword, the int16
// pairs of their half-block sums (kquant_half_sums), d_x per super-block, and where the output goes.
struct KQuantLaneInput {
  const QuantWeight* w = nullptr;
  KQuantAct act;
  std::vector<int32_t> x, bs;
  int64_t n = 0;
  float* y = nullptr;
};
// Checks the weight (throws qforge::Error naming `who`) and prepares the activations; false if there is no work.
bool kquant_lane_input(const char* who, const QuantWeight& w, const float* x, int64_t n_tokens, float* y,
                       KQuantLaneInput& in);
// Whether a lane kernel at `isa` takes this call: a K-quant weight with whole super-blocks, from
// kKQuantInt8MinTokens tokens (fewer go to the decode kernels), where best_isa() is `isa`.
inline constexpr int64_t kKQuantInt8MinTokens = 4;
bool kquant_lane_applies(const QuantWeight& w, int64_t n_tokens, Isa isa);

// The same with AVX-512 VNNI (kquant_avx512.cpp), for CPUs without AMX.
bool kquant_avx512_applies(const QuantWeight& w, int64_t n_tokens);
void kquant_linear_avx512(const QuantWeight& w, const float* x, int64_t n_tokens, float* y);
// And with AVX2 (kquant_avx2.cpp: vpmaddubsw / vpmaddwd), where best_isa() is AVX2.
bool kquant_avx2_applies(const QuantWeight& w, int64_t n_tokens);
void kquant_linear_avx2(const QuantWeight& w, const float* x, int64_t n_tokens, float* y);

// Test hook: the kernel's vector form of one super-block (row r, super-block sb) as it feeds the tiles:
// p split into hi = p >> 6 and lo = p & 63 (p = 64 hi + lo), and the minimum codes; d and dmin.
void kquant_tile_rows(const QuantWeight& w, int64_t r, int64_t sb, int8_t* hi, int8_t* lo, int8_t* m, float& d,
                      float& dmin);

}  // namespace qforge::cpu_quant
