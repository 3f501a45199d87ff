// qforge/dtype.h — element types and their traits table, plus the exact scalar conversions
// (f32 <-> f16/bf16, round-to-nearest-even, NaN preserved) every backend's reference uses.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

namespace qforge {

enum class DType : uint8_t { F32, F16, BF16, F64, I8, U8, I16, I32, I64, U32, F8_E4M3, F8_E5M2, Bool };

struct DTypeTraits {
  DType dtype;
  std::string_view name;             // qforge / CLI spelling: "f32", "bf16", ...
  std::string_view safetensors_name; // "F32", "BF16", ...
  size_t size;                       // bytes per element
  bool is_float;
};

const DTypeTraits& dtype_traits(DType t);
inline size_t dtype_size(DType t) { return dtype_traits(t).size; }
inline std::string_view dtype_name(DType t) { return dtype_traits(t).name; }
// "f32"/"float32"/"fp32", "f16"/"float16"/"fp16"/"half", "bf16"/"bfloat16", ... ; nullopt if unknown.
std::optional<DType> parse_dtype(std::string_view s);
std::optional<DType> dtype_from_safetensors(std::string_view s);

inline uint32_t f32_bits(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }
inline float f32_from_bits(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }

inline float bf16_to_f32(uint16_t h) { return f32_from_bits(uint32_t(h) << 16); }
// Round-to-nearest-even as torch's .to(torch.bfloat16); NaN stays NaN (quiet).
inline uint16_t f32_to_bf16(float f) {
  uint32_t u = f32_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);  // IEEE binary16, round-to-nearest-even, overflow -> inf

}  // namespace qforge
