// core/dtype.cpp — the dtype traits table and the f16 conversions (bit-exact IEEE binary16).
#include "qforge/dtype.h"

#include <array>
#include <cctype>
#include <string>

#include "qforge/status.h"

namespace qforge {

namespace {
constexpr std::array<DTypeTraits, 13> kTraits = {{
    {DType::F32, "f32", "F32", 4, true},
    {DType::F16, "f16", "F16", 2, true},
    {DType::BF16, "bf16", "BF16", 2, true},
    {DType::F64, "f64", "F64", 8, true},
    {DType::I8, "i8", "I8", 1, false},
    {DType::U8, "u8", "U8", 1, false},
    {DType::I16, "i16", "I16", 2, false},
    {DType::I32, "i32", "I32", 4, false},
    {DType::I64, "i64", "I64", 8, false},
    {DType::U32, "u32", "U32", 4, false},
    {DType::F8_E4M3, "f8_e4m3", "F8_E4M3", 1, true},
    {DType::F8_E5M2, "f8_e5m2", "F8_E5M2", 1, true},
    {DType::Bool, "bool", "BOOL", 1, false},
}};
}  // namespace

void fail_check(const char* expr, const char* file, int line, const std::string& msg) {
  throw Error(std::string("internal error at ") + file + ":" + std::to_string(line) + ": " + expr +
              (msg.empty() ? "" : " (" + msg + ")"));
}

const DTypeTraits& dtype_traits(DType t) {
  auto i = size_t(t);
  QF_CHECK(i < kTraits.size() && kTraits[i].dtype == t, "dtype table out of order");
  return kTraits[i];
}

std::optional<DType> parse_dtype(std::string_view s) {
  std::string l(s);
  for (auto& c : l) c = char(std::tolower(unsigned(c)));
  if (l.rfind("torch.", 0) == 0) l = l.substr(6);
  if (l == "f32" || l == "fp32" || l == "float32" || l == "float") return DType::F32;
  if (l == "f16" || l == "fp16" || l == "float16" || l == "half") return DType::F16;
  if (l == "bf16" || l == "bfloat16") return DType::BF16;
  for (const auto& t : kTraits)
    if (l == t.name) return t.dtype;
  return std::nullopt;
}

std::optional<DType> dtype_from_safetensors(std::string_view s) {
  for (const auto& t : kTraits)
    if (s == t.safetensors_name) return t.dtype;
  return std::nullopt;
}

float f16_to_f32(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t man = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (man == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      int e = -1;
      do {
        ++e;
        man <<= 1;
      } while (!(man & 0x400u));
      bits = sign | uint32_t(127 - 15 - e) << 23 | (man & 0x3ffu) << 13;
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | man << 13 | (man ? 0x400000u : 0);
  } else {
    bits = sign | (exp + 112) << 23 | man << 13;
  }
  return f32_from_bits(bits);
}

uint16_t f32_to_f16(float f) {
  uint32_t u = f32_bits(f);
  uint16_t sign = uint16_t((u >> 16) & 0x8000u);
  uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return uint16_t(sign | 0x7e00u | ((a >> 13) & 0x3ffu));  // NaN, quiet
  if (a >= 0x477ff000u) return uint16_t(sign | 0x7c00u);  // rounds to >= 65520 -> inf
  if (a < 0x38800000u) {  // below smallest normal (2^-14): subnormal or zero
    // value = a as float; subnormal unit 2^-24. Round to nearest even.
    if (a < 0x33000000u) return sign;  // < 2^-25 -> 0 (2^-25 exactly ties to even 0)
    uint32_t e = a >> 23;
    uint32_t m = (a & 0x7fffffu) | 0x800000u;
    // value = m * 2^(e-150); in units of 2^-24 that is m >> (126 - e)
    int shift = int(126 - e);
    uint32_t q = m >> shift;
    uint32_t rem = m & ((1u << shift) - 1);
    uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1))) ++q;
    return uint16_t(sign | q);
  }
  // normal
  uint32_t r = a + 0xfffu + ((a >> 13) & 1u);
  return uint16_t(sign | ((r - 0x38000000u) >> 13));
}

}  // namespace qforge
