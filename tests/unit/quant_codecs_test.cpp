// tests/unit/quant_codecs_test.cpp — exhaustive checks of the element codecs: all FP8/E2M1/E8M0 codes,
// every f16/bf16 bit pattern -> FP8 against a brute-force nearest-value reference, a (strided, or full
// with QFORGE_EXHAUSTIVE=1) 2^32 f32 sweep, the rcp.approx emulation against the spec's counts, and the
// NF4/FP4/dynamic-map tables, thresholds and tie rules.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <limits>

#include "quant/quant_codecs.h"

using namespace qforge;
using namespace qforge::quant_detail;

namespace {
bool is_nan_code(uint8_t c, Fp8Kind k) { return std::isnan(fp8_to_f32(c, k)); }
bool is_inf_code(uint8_t c, Fp8Kind k) { return std::isinf(fp8_to_f32(c, k)); }

// Brute force: nearest finite code by |value - x| in double, ties to the even code (mantissa LSB 0).
// Over finite codes only this is exactly SATFINITE round-to-nearest-even.
uint8_t brute_fp8(float x, Fp8Kind k) {
  if (std::isnan(x)) return uint8_t((std::signbit(x) ? 0x80 : 0) | 0x7F);
  // Beyond max every distance is huge and double differences would tie: the nearest is max.
  if (std::isinf(x) || std::fabs(x) > fp8_spec(k).max_finite) return uint8_t((std::signbit(x) ? 0x80 : 0) | fp8_spec(k).max_code);
  int best = -1;
  double best_d = INFINITY;
  for (int c = 0; c < 256; ++c) {
    if (is_nan_code(uint8_t(c), k) || is_inf_code(uint8_t(c), k)) continue;
    const float v = fp8_to_f32(uint8_t(c), k);
    if ((std::signbit(v) != std::signbit(x))) continue;  // same-sign codes (so -tiny -> -0)
    const double d = std::fabs(double(v) - double(x));
    if (d < best_d || (d == best_d && (c & 1) == 0)) { best_d = d; best = c; }
  }
  return uint8_t(best);
}

// Independent double-precision RNE encoder (quantum 2^(max(e,emin)-mbits), std::nearbyint).
uint8_t double_fp8(float xf, Fp8Kind k, bool sat) {
  const Fp8Spec sp = fp8_spec(k);
  const uint8_t sign = std::signbit(xf) ? 0x80 : 0;
  if (std::isnan(xf)) return uint8_t(sign | 0x7F);
  const double a = std::fabs(double(xf));
  const double max = sp.max_finite, half_ulp = (k == Fp8Kind::E4M3 ? 16.0 : 4096.0);
  const bool over = k == Fp8Kind::E4M3 ? a > max + half_ulp : a >= max + half_ulp;
  if (over) return uint8_t(sign | (sat ? sp.max_code : (k == Fp8Kind::E4M3 ? 0x7F : 0x7C)));
  const int emin = 1 - sp.bias;
  int e = a > 0 ? std::ilogb(a) : emin;
  if (e < emin) e = emin;
  const double quantum = std::ldexp(1.0, e - sp.mbits);
  const double r = std::nearbyint(a / quantum) * quantum;
  if (r == 0) return sign;
  for (int c = 0; c < 0x80; ++c)
    if (fp8_to_f32(uint8_t(c), k) == float(r)) return uint8_t(sign | c);
  return 0xFF;  // unreachable for a correct rounding
}
}  // namespace

TEST(QuantCodecs, Fp8AllCodesRoundTrip) {
  for (Fp8Kind k : {Fp8Kind::E4M3, Fp8Kind::E5M2})
    for (int c = 0; c < 256; ++c) {
      const float v = fp8_to_f32(uint8_t(c), k);
      if (std::isnan(v)) {
        EXPECT_EQ(f32_to_fp8(v, k), 0x7F) << c;  // decoded NaN is +NaN
        EXPECT_EQ(f32_to_fp8(-v, k), 0xFF) << c;
        continue;
      }
      if (std::isinf(v)) {
        EXPECT_EQ(f32_to_fp8(v, k, false), uint8_t(c)) << c;                    // inf stays inf (NOSAT)
        EXPECT_EQ(f32_to_fp8(v, k, true), uint8_t((c & 0x80) | 0x7B)) << c;     // SATFINITE -> max
        continue;
      }
      EXPECT_EQ(f32_to_fp8(v, k), uint8_t(c)) << "kind " << int(k) << " code " << c;
    }
}

TEST(QuantCodecs, Fp8SpecialValues) {
  const auto E4 = Fp8Kind::E4M3, E5 = Fp8Kind::E5M2;
  EXPECT_EQ(fp8_to_f32(0x7E, E4), 448.0f);
  EXPECT_EQ(fp8_to_f32(0x08, E4), 0.015625f);
  EXPECT_EQ(fp8_to_f32(0x01, E4), std::ldexp(1.0f, -9));
  EXPECT_EQ(fp8_to_f32(0x07, E4), 0.875f * std::ldexp(1.0f, -6));
  EXPECT_TRUE(std::isnan(fp8_to_f32(0x7F, E4)) && std::isnan(fp8_to_f32(0xFF, E4)));
  EXPECT_EQ(fp8_to_f32(0x7B, E5), 57344.0f);
  EXPECT_EQ(fp8_to_f32(0x04, E5), std::ldexp(1.0f, -14));
  EXPECT_EQ(fp8_to_f32(0x01, E5), std::ldexp(1.0f, -16));
  EXPECT_EQ(fp8_to_f32(0x7C, E5), INFINITY);
  EXPECT_EQ(fp8_to_f32(0xFC, E5), -INFINITY);
  for (int c : {0x7D, 0x7E, 0x7F, 0xFD, 0xFE, 0xFF}) EXPECT_TRUE(std::isnan(fp8_to_f32(uint8_t(c), E5)));
  // The measured table of spec §1.2 (E4M3 sat / nosat | E5M2 sat / nosat).
  EXPECT_EQ(f32_to_fp8(449, E4, true), 0x7E);
  EXPECT_EQ(f32_to_fp8(449, E4, false), 0x7E);
  EXPECT_EQ(f32_to_fp8(464, E4, true), 0x7E);
  EXPECT_EQ(f32_to_fp8(464, E4, false), 0x7E);
  EXPECT_EQ(f32_to_fp8(464.1f, E4, true), 0x7E);
  EXPECT_EQ(f32_to_fp8(464.1f, E4, false), 0x7F);
  EXPECT_EQ(f32_to_fp8(1e6f, E4, true), 0x7E);
  EXPECT_EQ(f32_to_fp8(1e6f, E4, false), 0x7F);
  EXPECT_EQ(f32_to_fp8(1e6f, E5, true), 0x7B);
  EXPECT_EQ(f32_to_fp8(1e6f, E5, false), 0x7C);
  EXPECT_EQ(f32_to_fp8(61440, E5, true), 0x7B);
  EXPECT_EQ(f32_to_fp8(61440, E5, false), 0x7C);
  EXPECT_EQ(f32_to_fp8(61439, E5, false), 0x7B);
  EXPECT_EQ(f32_to_fp8(std::ldexp(1.0f, -10), E4), 0x00);
  EXPECT_EQ(f32_to_fp8(0.00098f, E4), 0x01);
  EXPECT_EQ(f32_to_fp8(-std::ldexp(1.0f, -10), E4), 0x80);
  EXPECT_EQ(f32_to_fp8(-INFINITY, E4, true), 0xFE);
  EXPECT_EQ(f32_to_fp8(-INFINITY, E5, false), 0xFC);
  EXPECT_EQ(f32_to_fp8(-0.0f, E4), 0x80);
}

TEST(QuantCodecs, Fp8AllF16AndBf16PatternsMatchBruteForce) {
  for (Fp8Kind k : {Fp8Kind::E4M3, Fp8Kind::E5M2})
    for (int src = 0; src < 2; ++src)
      for (uint32_t h = 0; h < 65536; ++h) {
        const float x = src == 0 ? f16_to_f32(uint16_t(h)) : bf16_to_f32(uint16_t(h));
        ASSERT_EQ(f32_to_fp8(x, k, true), brute_fp8(x, k))
            << (src ? "bf16 " : "f16 ") << std::hex << h << " kind " << int(k);
        ASSERT_EQ(f32_to_fp8(x, k, false), double_fp8(x, k, false)) << std::hex << h;
      }
}

TEST(QuantCodecs, Fp8F32SweepMatchesDoubleReference) {
  // Full 2^32 sweep with QFORGE_EXHAUSTIVE=1 (about a minute); otherwise every 61st pattern.
  const uint64_t stride = std::getenv("QFORGE_EXHAUSTIVE") ? 1 : 61;
  for (Fp8Kind k : {Fp8Kind::E4M3, Fp8Kind::E5M2})
    for (uint64_t u = 0; u < (1ull << 32); u += stride) {
      const float x = f32_from_bits(uint32_t(u));
      for (bool sat : {true, false})
        ASSERT_EQ(f32_to_fp8(x, k, sat), double_fp8(x, k, sat)) << std::hex << u << " sat " << sat;
    }
}

TEST(QuantCodecs, E2M1AllCodesAndRounding) {
  for (int c = 0; c < 16; ++c) {
    EXPECT_EQ(f32_to_e2m1(e2m1_to_f32(uint8_t(c))), c);
    EXPECT_EQ(std::signbit(e2m1_to_f32(uint8_t(c))), c >= 8);
  }
  const std::pair<float, int> cases[] = {{0.25f, 0}, {0.26f, 1}, {0.75f, 2}, {1.25f, 2}, {1.75f, 4}, {2.5f, 4},
                                         {3.5f, 6},  {5.0f, 6},  {5.1f, 7},  {100.f, 7}, {-INFINITY, 15},
                                         {NAN, 7},   {-0.3f, 9}, {-1e-30f, 8}};
  for (auto [x, c] : cases) EXPECT_EQ(f32_to_e2m1(x), c) << x;
  // Brute force over a fine grid: nearest value, ties to the even code, saturating at 6.
  for (int i = -1000; i <= 1000; ++i) {
    const float x = float(i) / 128.0f;
    int best = 0;
    double bd = INFINITY;
    for (int c = 0; c < 16; ++c) {
      const float v = e2m1_to_f32(uint8_t(c));
      if (std::signbit(v) != std::signbit(x)) continue;
      const double d = std::fabs(double(v) - x);
      if (d < bd || (d == bd && (c & 1) == 0)) { bd = d; best = c; }
    }
    EXPECT_EQ(f32_to_e2m1(x), best) << x;
  }
}

TEST(QuantCodecs, E8M0All256) {
  for (int e = 0; e < 255; ++e) {
    const float v = e8m0_to_f32(uint8_t(e));
    EXPECT_EQ(v, std::ldexp(1.0f, e - 127)) << e;
    EXPECT_EQ(f32_bits(v), e == 0 ? 0x00400000u : uint32_t(e) << 23) << e;
  }
  EXPECT_TRUE(std::isnan(e8m0_to_f32(0xFF)));
}

TEST(QuantCodecs, RcpApproxMatchesSpecCounts) {
  // Spec §8: rcp.approx.ftz.f32 differs from the correctly rounded 1/x for 1,108,522 of the 2^23 values
  // in [1,2), for 5,040 bf16-representable and 3,900 fp16-representable normal values (counted where
  // the true reciprocal is normal: for x >= 2^126 the ftz result 0 differs trivially).
  int64_t in12 = 0, bf = 0, hf = 0;
  for (uint32_t m = 0; m < (1u << 23); ++m) {
    const float x = f32_from_bits(0x3f800000u | m);
    in12 += rcp_approx_ftz(x) != 1.0f / x;
  }
  for (uint32_t h = 0; h < 0x8000; ++h) {
    const float b = bf16_to_f32(uint16_t(h));
    if (std::isnormal(b) && std::isnormal(1.0f / b)) bf += rcp_approx_ftz(b) != 1.0f / b;
    const float f = f16_to_f32(uint16_t(h));
    if (std::isnormal(f) && std::fabs(f) >= 6.103515625e-05f) hf += rcp_approx_ftz(f) != 1.0f / f;
  }
  EXPECT_EQ(in12, 1108522);
  EXPECT_EQ(bf, 5040);
  EXPECT_EQ(hf, 3900);
  // Within 1 ulp everywhere, exact at powers of two, ftz at both ends, sign symmetric.
  for (uint32_t u = 0x00800000u; u < 0x7f800000u; u += 4093) {
    const float x = f32_from_bits(u), r = rcp_approx_ftz(x), c = 1.0f / x;
    if (std::isnormal(c)) EXPECT_LE(std::abs(int64_t(f32_bits(r)) - int64_t(f32_bits(c))), 1) << std::hex << u;
    EXPECT_EQ(rcp_approx_ftz(-x), -r);
  }
  EXPECT_EQ(rcp_approx_ftz(4.0f), 0.25f);
  EXPECT_EQ(rcp_approx_ftz(0.0f), INFINITY);
  EXPECT_EQ(rcp_approx_ftz(1e-40f), INFINITY);      // subnormal input flushed
  EXPECT_EQ(rcp_approx_ftz(3e38f), 0.0f);           // subnormal result flushed
  EXPECT_EQ(rcp_approx_ftz(INFINITY), 0.0f);
}

TEST(QuantCodecs, Nf4TableAndThresholds) {
  EXPECT_EQ(kNf4Values[0], -1.0f);
  EXPECT_EQ(kNf4Values[7], 0.0f);
  EXPECT_EQ(kNf4Values[15], 1.0f);
  EXPECT_FLOAT_EQ(kNf4Values[8], 0.07958029955625534f);
  for (int i = 0; i < 15; ++i) {
    // The thresholds are exactly the fp32 midpoints of adjacent codes; a tie goes to the lower code.
    const float t = (kNf4Values[i] + kNf4Values[i + 1]) * 0.5f;
    EXPECT_EQ(quantize_nf4_code(t), i) << i;
    EXPECT_EQ(quantize_nf4_code(std::nextafter(t, 2.0f)), i + 1) << i;
    EXPECT_EQ(quantize_nf4_code(kNf4Values[i]), i);
  }
  EXPECT_EQ(quantize_nf4_code(kNf4Values[15]), 15);
  EXPECT_EQ(quantize_nf4_code(NAN), 0);
  EXPECT_EQ(quantize_nf4_code(0.0f), 7);
  EXPECT_EQ(quantize_nf4_code(-0.0f), 7);
}

TEST(QuantCodecs, Fp4TableAndCudaLiterals) {
  const uint32_t map_hex[16] = {0x00000000, 0x3baaaaab, 0x3f2aaaab, 0x3f800000, 0x3eaaaaab, 0x3f000000,
                                0x3e2aaaab, 0x3e800000, 0x80000000, 0xbbaaaaab, 0xbf2aaaab, 0xbf800000,
                                0xbeaaaaab, 0xbf000000, 0xbe2aaaab, 0xbe800000};
  for (int i = 0; i < 16; ++i) EXPECT_EQ(f32_bits(kFp4Values[i]), map_hex[i]) << i;
  // The seven CUDA literals (spec §2) with the magnitude codes on either side of each.
  const std::tuple<uint32_t, int, int> thr[] = {{0x3b2aaab9, 0, 1}, {0x3db00000, 1, 6}, {0x3e555555, 6, 7},
                                                {0x3e955555, 7, 4}, {0x3ed55556, 4, 5}, {0x3f155550, 5, 2},
                                                {0x3f555555, 2, 3}};
  for (auto [h, lo, hi] : thr) {
    const float t = f32_from_bits(h);
    EXPECT_EQ(quantize_fp4_code(t), lo) << std::hex << h;
    EXPECT_EQ(quantize_fp4_code(std::nextafter(t, 2.0f)), hi) << std::hex << h;
    EXPECT_EQ(quantize_fp4_code(-std::nextafter(t, 2.0f)), hi + 8) << std::hex << h;
  }
  for (int c = 0; c < 16; ++c) EXPECT_EQ(quantize_fp4_code(kFp4Values[c]), c == 8 ? 0 : c) << c;  // -0 -> +0
  EXPECT_EQ(quantize_fp4_code(-1e-9f), 8);
  EXPECT_EQ(quantize_fp4_code(NAN), 0);
}

TEST(QuantCodecs, DynamicMapSearchAndTies) {
  const auto& c = kDynamicMap8;
  EXPECT_EQ(f32_bits(c[0]), 0xbf7e3333u);
  EXPECT_EQ(c[127], 0.0f);
  EXPECT_EQ(c[255], 1.0f);
  for (int i = 0; i < 255; ++i) EXPECT_LT(c[i], c[i + 1]) << i;
  for (int i = 0; i < 127; ++i) EXPECT_EQ(c[i], -c[254 - i]) << i;
  EXPECT_EQ(quantize_dynamic8(-1.0f), 0);
  EXPECT_EQ(quantize_dynamic8(1.0f), 255);
  EXPECT_EQ(quantize_dynamic8(NAN), 0);
  for (int i = 0; i < 256; ++i) EXPECT_EQ(quantize_dynamic8(c[i]), i) << i;
  // An exact fp32 midpoint goes to the even index of the pair (the last probed pivot).
  for (int i = 0; i < 255; ++i) {
    const float mid = (c[i] + c[i + 1]) * 0.5f;
    if (mid == c[i] || mid == c[i + 1]) continue;
    EXPECT_EQ(quantize_dynamic8(mid), (i & 1) ? i + 1 : i) << i;
    EXPECT_EQ(quantize_dynamic8(std::nextafter(mid, -2.0f)), i) << i;
    EXPECT_EQ(quantize_dynamic8(std::nextafter(mid, 2.0f)), i + 1) << i;
  }
}
