// tests/unit/dtype_test.cpp — f16/bf16 conversions over all 65,536 bit patterns, and the traits table.
#include <gtest/gtest.h>

#include <cmath>

#include "qforge/dtype.h"

using namespace qforge;

TEST(DType, Bf16RoundTripAllPatterns) {
  for (uint32_t h = 0; h < 65536; ++h) {
    float f = bf16_to_f32(uint16_t(h));
    uint16_t back = f32_to_bf16(f);
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(bf16_to_f32(back))) << h;
    } else {
      EXPECT_EQ(back, h) << h;
    }
  }
}

TEST(DType, F16RoundTripAllPatterns) {
  for (uint32_t h = 0; h < 65536; ++h) {
    float f = f16_to_f32(uint16_t(h));
    uint16_t back = f32_to_f16(f);
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(f16_to_f32(back))) << h;
    } else {
      EXPECT_EQ(back, h) << h;
    }
  }
}

TEST(DType, F16MatchesHardwareRounding) {
  // Midpoints between consecutive f16 values must round to even; compare against _Float16.
  for (uint32_t h = 0; h < 0x7c00; ++h) {
    float a = f16_to_f32(uint16_t(h)), b = f16_to_f32(uint16_t(h + 1));
    float mid = 0.5f * (a + b);  // exact in f32
    uint16_t want = (h & 1) ? uint16_t(h + 1) : uint16_t(h);
    if (h + 1 == 0x7c00) want = 0x7c00;  // 65520 ties to inf (65504 has an odd mantissa)
    EXPECT_EQ(f32_to_f16(mid), want) << h;
    EXPECT_EQ(f32_to_f16(-mid), uint16_t(want | 0x8000)) << h;
    EXPECT_EQ(uint16_t(static_cast<_Float16>(mid) == static_cast<_Float16>(f16_to_f32(want))), 1) << h;
  }
}

TEST(DType, Bf16RoundsToNearestEven) {
  EXPECT_EQ(f32_to_bf16(f32_from_bits(0x3f808000u)), 0x3f80);  // tie, even stays
  EXPECT_EQ(f32_to_bf16(f32_from_bits(0x3f818000u)), 0x3f82);  // tie, odd rounds up
  EXPECT_EQ(f32_to_bf16(f32_from_bits(0x3f808001u)), 0x3f81);
  EXPECT_EQ(f32_to_bf16(f32_from_bits(0x7f7fffffu)), 0x7f80);  // overflow to inf
}

TEST(DType, Parse) {
  EXPECT_EQ(parse_dtype("bfloat16"), DType::BF16);
  EXPECT_EQ(parse_dtype("torch.float16"), DType::F16);
  EXPECT_EQ(parse_dtype("fp32"), DType::F32);
  EXPECT_FALSE(parse_dtype("float8").has_value());
  EXPECT_EQ(dtype_from_safetensors("BF16"), DType::BF16);
  EXPECT_EQ(dtype_size(DType::F8_E4M3), 1u);
}
