// src/quant/codecs.cpp — element codecs: rcp.approx emulation, FP8 E4M3/E5M2, E2M1, the bitsandbytes
// NF4/FP4 tables with their CUDA decision trees, and the 8-bit dynamic map with the kernel's search.
// Every rule here follows /work/shared/specs/bitsandbytes.md and fp8-fp4-formats.md.
#include <algorithm>
#include <mutex>
#include <string_view>
#include <vector>

#include "quant/quant_codecs.h"

namespace qforge::quant_detail {

extern const std::string_view kRcpApproxTableB64;

namespace {
const std::vector<uint8_t>& rcp_table() {
  static std::vector<uint8_t> bits;
  static std::once_flag once;
  std::call_once(once, [] {
    auto val = [](char c) -> uint32_t {
      if (c >= 'A' && c <= 'Z') return uint32_t(c - 'A');
      if (c >= 'a' && c <= 'z') return uint32_t(c - 'a' + 26);
      if (c >= '0' && c <= '9') return uint32_t(c - '0' + 52);
      return c == '+' ? 62u : 63u;
    };
    std::string_view s = kRcpApproxTableB64;
    bits.reserve(s.size() / 4 * 3);
    for (size_t i = 0; i + 4 <= s.size(); i += 4) {
      uint32_t v = (val(s[i]) << 18) | (val(s[i + 1]) << 12);
      bits.push_back(uint8_t(v >> 16));
      if (s[i + 2] != '=') { v |= val(s[i + 2]) << 6; bits.push_back(uint8_t(v >> 8)); }
      if (s[i + 3] != '=') { v |= val(s[i + 3]); bits.push_back(uint8_t(v)); }
    }
  });
  return bits;
}
}  // namespace

// Model verified on all 2^32 inputs: inputs are flushed (0/subnormal -> +-inf), the result in [1,2)
// is the correctly rounded reciprocal or, where the table bit is set, its other neighbour; the
// binade only shifts the exponent; a subnormal result is flushed to +-0.
float rcp_approx_ftz(float x) {
  uint32_t u = f32_bits(x), s = u & 0x80000000u, e = (u >> 23) & 255, m = u & 0x7fffffu;
  if (e == 255) return m ? x : f32_from_bits(s);
  if (e == 0) return f32_from_bits(s | 0x7f800000u);
  float x1 = f32_from_bits(0x3f800000u | m);
  float c = 1.0f / x1;
  const auto& t = rcp_table();
  if ((t[m >> 3] >> (m & 7)) & 1) {
    double err = 1.0 - double(c) * double(x1);  // exact in double; > 0 means 1/x1 lies above c
    c = f32_from_bits(f32_bits(c) + (err > 0 ? 1u : uint32_t(-1)));
  }
  int re = int((f32_bits(c) >> 23) & 255) + 127 - int(e);
  if (re <= 0) return f32_from_bits(s);
  return f32_from_bits(s | (uint32_t(re) << 23) | (f32_bits(c) & 0x7fffffu));
}

float fp8_to_f32(uint8_t code, Fp8Kind k) {
  const Fp8Spec sp = fp8_spec(k);
  const int eb = 7 - sp.mbits;
  const float sign = (code & 0x80) ? -1.0f : 1.0f;
  const int e = (code >> sp.mbits) & ((1 << eb) - 1), m = code & ((1 << sp.mbits) - 1);
  if (k == Fp8Kind::E4M3 && e == 15 && m == 7) return NAN;
  if (k == Fp8Kind::E5M2 && e == 31) return m ? NAN : sign * INFINITY;
  if (e == 0) return sign * std::ldexp(float(m), 1 - sp.bias - sp.mbits);
  return sign * std::ldexp(float((1 << sp.mbits) | m), e - sp.bias - sp.mbits);
}

// Integer RNE on the f32 significand: the quantum is 2^(max(e, emin) - mbits); carries into the
// next exponent (and from the subnormal range into the first normal) fall out of the addition.
uint8_t f32_to_fp8(float x, Fp8Kind k, bool saturate) {
  const Fp8Spec sp = fp8_spec(k);
  uint32_t u = f32_bits(x);
  const uint8_t sign = uint8_t((u >> 24) & 0x80);
  u &= 0x7fffffffu;
  if (u > 0x7f800000u) return uint8_t(sign | 0x7F);  // NaN (E5M2: the quiet NaN of a float NaN)
  const bool overflow = k == Fp8Kind::E4M3 ? u > f32_bits(464.0f) : u >= f32_bits(61440.0f);
  if (overflow) return uint8_t(sign | (saturate ? sp.max_code : (k == Fp8Kind::E4M3 ? 0x7F : 0x7C)));
  if (u < 0x00800000u) return sign;  // f32 zero/subnormal: far below half the smallest fp8 subnormal
  const int e = int(u >> 23) - 127, emin = 1 - sp.bias;
  const uint32_t mant = (u & 0x7fffffu) | 0x800000u;
  const int shift = 23 - sp.mbits + (e < emin ? emin - e : 0);
  if (shift > 25) return sign;  // below a quarter quantum: rounds to 0
  uint32_t r = mant >> shift;
  const uint32_t rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
  if (rem > half || (rem == half && (r & 1))) ++r;
  const uint32_t code = e < emin ? r : (uint32_t(e + sp.bias - 1) << sp.mbits) + r;
  return uint8_t(sign | code);
}

uint8_t f32_to_e2m1(float x) {
  uint32_t u = f32_bits(x);
  const uint8_t sign = uint8_t((u >> 28) & 0x8);
  u &= 0x7fffffffu;
  if (u > 0x7f800000u) return 0x7;
  if (u >= f32_bits(6.0f)) return uint8_t(sign | 0x7);
  if (u < 0x00800000u) return sign;
  const int e = int(u >> 23) - 127, emin = 0, mbits = 1;
  const uint32_t mant = (u & 0x7fffffu) | 0x800000u;
  const int shift = 23 - mbits + (e < emin ? emin - e : 0);
  if (shift > 25) return sign;
  uint32_t r = mant >> shift;
  const uint32_t rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
  if (rem > half || (rem == half && (r & 1))) ++r;
  const uint32_t code = e < emin ? r : (uint32_t(e + 1 - 1) << mbits) + r;  // bias 1
  return uint8_t(sign | code);
}

namespace {
constexpr std::array<uint32_t, 16> kNf4Hex = {0xbf800000u, 0xbf3239b1u, 0xbf066b30u, 0xbeca32a0u, 0xbe91a24du,
                                              0xbe3d353fu, 0xbdba7871u, 0x00000000u, 0x3da2faffu, 0x3e24cae3u,
                                              0x3e7c04ddu, 0x3ead033au, 0x3ee1a4b8u, 0x3f1007abu, 0x3f3913b3u,
                                              0x3f800000u};
constexpr std::array<uint32_t, 15> kNf4ThresholdHex = {0xbf591cd8u, 0xbf1c5270u, 0xbeeb8480u, 0xbeadea76u, 0xbe703cecu,
                                                       0xbe0d38bcu, 0xbd3a7871u, 0x3d22faffu, 0x3df64862u, 0x3e5067e0u,
                                                       0x3e9582d4u, 0x3ec753f9u, 0x3f006d04u, 0x3f248dafu, 0x3f5c89dau};
constexpr std::array<uint32_t, 16> kFp4Hex = {0x00000000u, 0x3baaaaabu, 0x3f2aaaabu, 0x3f800000u, 0x3eaaaaabu,
                                              0x3f000000u, 0x3e2aaaabu, 0x3e800000u, 0x80000000u, 0xbbaaaaabu,
                                              0xbf2aaaabu, 0xbf800000u, 0xbeaaaaabu, 0xbf000000u, 0xbe2aaaabu,
                                              0xbe800000u};
constexpr std::array<uint32_t, 256> kDynamicHex = {
#include "quant/dynamic_map8.inc"
};
template <size_t N> std::array<float, N> floats_of(const std::array<uint32_t, N>& h) {
  std::array<float, N> f{};
  for (size_t i = 0; i < N; ++i) f[i] = f32_from_bits(h[i]);
  return f;
}
const std::array<float, 15> kNf4Thresholds = floats_of(kNf4ThresholdHex);
}  // namespace

const std::array<float, 16> kNf4Values = floats_of(kNf4Hex);
const std::array<float, 16> kFp4Values = floats_of(kFp4Hex);
const std::array<float, 256> kDynamicMap8 = floats_of(kDynamicHex);

uint8_t quantize_nf4_code(float y) {
  uint8_t c = 0;
  for (float t : kNf4Thresholds) c = uint8_t(c + (y > t ? 1 : 0));  // NaN: every test false -> 0
  return c;
}

uint8_t quantize_fp4_code(float y) {
  const uint8_t sign = y < 0.0f ? 8 : 0;  // -0 and NaN count as positive
  const float a = std::fabs(y);
  uint8_t m;
  if (a > 0.29166667f) m = a > 0.583333f ? (a > 0.8333333f ? 0b011 : 0b010) : (a > 0.4166667f ? 0b101 : 0b100);
  else m = a > 0.0859375f ? (a > 0.20833333f ? 0b111 : 0b110) : (a > 0.00260417f ? 0b001 : 0b000);
  return uint8_t(m + sign);
}

uint8_t quantize_dynamic8(float x) {
  const auto& code = kDynamicMap8;
  int pivot = 127, lo_p = 0, up_p = 255;
  float lower = -1.0f, upper = 1.0f, val = code[127];
  for (int i = 64; i > 0; i >>= 1) {
    if (x > val) { lo_p = pivot; lower = val; pivot += i; }
    else { up_p = pivot; upper = val; pivot -= i; }
    val = code[pivot];
  }
  if (up_p == 255) upper = code[255];
  if (lo_p == 0) lower = code[0];
  if (x > val) {
    const float mid = (upper + val) * 0.5f;
    return uint8_t(x > mid ? up_p : pivot);
  }
  const float mid = (lower + val) * 0.5f;
  return uint8_t(x < mid ? lo_p : pivot);
}

}  // namespace qforge::quant_detail
