// backends/cpu/amx_tiles.h — what the AMX kernels share (gguf_interleaved_amx.cpp, linear_amx.cpp): the
// tile configuration block of palette 1 and a compiler fence. GCC's tile intrinsics are asm statements that
// name tile registers by token (so tile numbers must be literals, not template parameters) and do not tell
// the compiler which memory they read or write: fence between normal stores and a tile load of the same
// memory, and between a tile store and normal loads of it.
#pragma once
#include <cstdint>

namespace qforge::cpu {

struct alignas(64) AmxTileConfig {
  uint8_t palette_id = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};  // bytes per tile row
  uint8_t rows[16] = {};
};

inline void amx_compiler_fence() { asm volatile("" ::: "memory"); }

}  // namespace qforge::cpu
