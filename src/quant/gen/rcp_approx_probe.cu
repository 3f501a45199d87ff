// src/quant/gen/rcp_approx_probe.cu — one-off probe run on an sm_90 GPU (not part of the build):
// records which mantissas in [1,2) get the "other neighbour" from rcp.approx.ftz.f32 (bitset file),
// then checks the binade-independent model (see src/quant/rcp_approx.cpp) on all 2^32 inputs, and
// checks div.approx.ftz.f32 (__fdividef(127, b)) == 127 * rcp_model(b) for all b.
#include <cstdio>
#include <cstdint>
#include <cstring>
#include <vector>

__device__ __host__ inline float bits_f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
__device__ __host__ inline uint32_t f_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

__device__ inline float rcp_hw(float x) { float r; asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(x)); return r; }
__device__ inline float div_hw(float a, float b) { float r; asm("div.approx.ftz.f32 %0, %1, %2;" : "=f"(r) : "f"(a), "f"(b)); return r; }

__global__ void mark(uint32_t* bits) {
  uint32_t m = blockIdx.x * blockDim.x + threadIdx.x;
  if (m >= (1u << 23)) return;
  float x = bits_f(0x3f800000u | m);
  if (rcp_hw(x) != __frcp_rn(x)) atomicOr(&bits[m >> 5], 1u << (m & 31));
}

// The model: table in [1,2) (other neighbour of the correctly rounded value), scaled by the binade;
// ftz on input (subnormal -> +-inf) and output (subnormal -> +-0).
__device__ float rcp_model(float x, const uint32_t* bits) {
  uint32_t u = f_bits(x), s = u & 0x80000000u, e = (u >> 23) & 255, m = u & 0x7fffffu;
  if (e == 255) return m ? x : bits_f(s);                 // NaN stays, inf -> 0
  if (e == 0) return bits_f(s | 0x7f800000u);             // 0/subnormal -> inf
  float x1 = bits_f(0x3f800000u | m);
  float c = __frcp_rn(x1);
  if ((bits[m >> 5] >> (m & 31)) & 1) {
    double err = 1.0 - (double)c * (double)x1;            // > 0: exact 1/x1 is above c
    c = bits_f(f_bits(c) + (err > 0 ? 1 : -1));
  }
  int re = int((f_bits(c) >> 23) & 255) + 127 - int(e);
  if (re <= 0) return bits_f(s);
  return bits_f(s | (uint32_t(re) << 23) | (f_bits(c) & 0x7fffffu));
}

__global__ void check(const uint32_t* bits, uint64_t base, unsigned long long* bad, unsigned long long* bad_div, uint32_t* ex) {
  uint64_t i = base + blockIdx.x * (uint64_t)blockDim.x + threadIdx.x;
  uint32_t u = (uint32_t)i;
  float x = bits_f(u);
  float a = rcp_hw(x), b = rcp_model(x, bits);
  bool same = (f_bits(a) == f_bits(b)) || (a != a && b != b);
  if (!same) { if (atomicAdd(bad, 1ull) < 8) ex[atomicAdd(ex + 64, 1u) % 32] = u; }
  float d = div_hw(127.0f, x), dm = 127.0f * b;
  // div.approx: documented special case for |b| in [2^126, 2^128): returns 0
  bool same_d = (f_bits(d) == f_bits(dm)) || (d != d && dm != dm);
  if (!same_d) { if (atomicAdd(bad_div, 1ull) < 8) ex[32 + (atomicAdd(ex + 65, 1u) % 32)] = u; }
}

int main(int argc, char** argv) {
  uint32_t* bits; cudaMallocManaged(&bits, (1u << 23) / 8); cudaMemset(bits, 0, (1u << 23) / 8);
  mark<<<(1u << 23) / 256, 256>>>(bits);
  unsigned long long* cnt; cudaMallocManaged(&cnt, 16); cnt[0] = cnt[1] = 0;
  uint32_t* ex; cudaMallocManaged(&ex, 66 * 4); memset(ex, 0, 66 * 4);
  for (uint64_t base = 0; base < (1ull << 32); base += (1ull << 30)) check<<<(1u << 30) / 256, 256>>>(bits, base, cnt, cnt + 1, ex);
  cudaDeviceSynchronize();
  size_t pop = 0; for (uint32_t i = 0; i < (1u << 18); ++i) pop += __builtin_popcount(bits[i]);
  printf("marked %zu of 8388608 mantissas; rcp model mismatches %llu; div(127,b) vs 127*rcp mismatches %llu\n", pop, cnt[0], cnt[1]);
  for (int i = 0; i < 8 && i < (int)cnt[0]; ++i) printf("rcp bad x=%08x\n", ex[i]);
  for (int i = 0; i < 8 && i < (int)cnt[1]; ++i) printf("div bad b=%08x\n", ex[32 + i]);
  FILE* f = fopen(argv[1], "wb"); fwrite(bits, 1, (1u << 23) / 8, f); fclose(f);
  return 0;
}
