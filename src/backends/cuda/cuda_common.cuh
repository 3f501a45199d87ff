// backends/cuda/cuda_common.cuh — what every CUDA file of the backend shares: the error-check
// macro (file and line in a qforge::Error), the device-side form of LinearInput, and the one
// input-staging routine every GEMV kernel uses (RMSNorm or SwiGLU folded into the load of x).
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "qforge/status.h"

namespace qforge::cuda {

[[noreturn]] inline void throw_cuda(cudaError_t e, const char* what, const char* file, int line) {
  throw Error(std::string("CUDA error ") + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ") in " + what + " at " +
              file + ":" + std::to_string(line));
}

#define QF_CUDA(call)                                                                    \
  do {                                                                                   \
    cudaError_t qf_e_ = (call);                                                          \
    if (qf_e_ != cudaSuccess) ::qforge::cuda::throw_cuda(qf_e_, #call, __FILE__, __LINE__); \
  } while (0)

// Device form of backends/backend.h's LinearInput: the GEMV input for token t is
//   rms_w: x[t] * rsqrt(mean(x[t]^2) + eps) * rms_w      up: silu(x[t]) * up[t]      else x[t]
struct LinearInputDev {
  const float* x = nullptr;      // [n, cols]
  const float* rms_w = nullptr;  // [cols] f32 on the device, or null
  float eps = 0.f;
  const float* up = nullptr;     // [n, cols] or null
};

// Block-cooperative: the maximum of every thread's `m`, returned to every thread. Every thread of the
// block (whole warps) must call it; `red` is >= 32 floats of shared scratch (a first barrier lets an
// earlier use of it finish); ends with __syncthreads().
__device__ inline float block_max(float m, float* red) {
  for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
  __syncthreads();
  if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = m;
  __syncthreads();
  for (int w = 0; w < int(blockDim.x >> 5); ++w) m = fmaxf(m, red[w]);
  __syncthreads();
  return m;
}

// Block-cooperative: writes the staged input of token t (cols floats) into shared memory `dst`.
// Every thread of the block must call it; ends with __syncthreads(). `red` is >= 32 floats of
// shared scratch. The RMS reduction is in f32 (reference: double; documented tolerance).
// The 16-byte path issues all of a thread's loads (x and up / rms_w, UNROLL float4 each) before
// using any: this prologue sits in front of every GEMV block's first weight use, and a loop of
// dependent global loads here cost more than the weights of a small layer (measured, perf-notes).
__device__ inline float silu_times(float g, float u) { return g / (1.f + __expf(-g)) * u; }

// RoPE of the pair (x0, x1) = dims (j, j + hd/2) of one head, c / s the cos / sin of the pair's angle at
// its position: the rotated low and high dims. Every kernel that rotates uses these two.
__device__ __forceinline__ float rope_lo(float x0, float x1, float c, float s) { return x0 * c - x1 * s; }
__device__ __forceinline__ float rope_hi(float x0, float x1, float c, float s) { return x1 * c + x0 * s; }

//
// SWZ (1, 2 or 4) swizzles the 16-byte chunks of dst for readers whose lanes each read SWZ consecutive
// chunks (a lane's 16 bytes of bf16 or 8-bit weights): element i sits at staged_index<SWZ>(i), which
// flips the low chunk bits by bits 3.. of the chunk index, so that the 8 lanes of a 128-bit shared load
// phase hit 8 different bank groups instead of 2 (SWZ 4: a 4-way conflict) or 4 (SWZ 2).
template <int SWZ>
__host__ __device__ __forceinline__ int staged_chunk(int ch) { return ch ^ ((ch >> 3) & (SWZ - 1)); }
template <int SWZ>
__host__ __device__ __forceinline__ int staged_index(int i) { return (staged_chunk<SWZ>(i >> 2) << 2) | (i & 3); }

template <int UNROLL = 4, int SWZ = 1>  // float4 loads per operand a thread has in flight (registers: 8 per unit)
__device__ inline void stage_linear_input(const LinearInputDev& in, int t, int cols, float* dst, float* red) {
  static_assert(SWZ == 1 || SWZ == 2 || SWZ == 4, "swizzle: 1, 2 or 4 chunks per lane");
  const float* x = in.x + size_t(t) * cols;
  const float* u = in.up ? in.up + size_t(t) * cols : nullptr;
  const float* w = in.rms_w;
  auto al16 = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };
  float ss = 0.f;
  if (cols % 4 == 0 && al16(x) && al16(dst) && (!u || al16(u)) && (!w || al16(w))) {
    const float4* x4 = reinterpret_cast<const float4*>(x);
    const float4* o4 = reinterpret_cast<const float4*>(u ? u : w);  // the other operand, if any
    float4* d4 = reinterpret_cast<float4*>(dst);
    const int n4 = cols / 4, step = int(blockDim.x);
    for (int base = int(threadIdx.x); base < n4; base += UNROLL * step) {
      float4 a[UNROLL], b[UNROLL];
#pragma unroll
      for (int j = 0; j < UNROLL; ++j) {
        const int i = base + j * step;
        if (i < n4) {
          a[j] = x4[i];
          if (o4) b[j] = o4[i];
        }
      }
#pragma unroll
      for (int j = 0; j < UNROLL; ++j) {
        const int i = base + j * step;
        if (i >= n4) continue;
        float4 v = a[j];
        if (u) {
          v = make_float4(silu_times(v.x, b[j].x), silu_times(v.y, b[j].y), silu_times(v.z, b[j].z), silu_times(v.w, b[j].w));
        } else if (w) {
          ss += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
          v = make_float4(v.x * b[j].x, v.y * b[j].y, v.z * b[j].z, v.w * b[j].w);  // times rms_w; 1/rms below
        }
        d4[staged_chunk<SWZ>(i)] = v;
      }
    }
  } else {
    for (int i = threadIdx.x; i < cols; i += blockDim.x) {
      const float v = x[i];
      const int di = staged_index<SWZ>(i);
      if (u) {
        dst[di] = silu_times(v, u[i]);
      } else if (w) {
        ss += v * v;
        dst[di] = v * w[i];
      } else {
        dst[di] = v;
      }
    }
  }
  if (u || !w) {
    __syncthreads();
    return;
  }
  for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, nwarps = (blockDim.x + 31) >> 5;
  if (lane == 0) red[warp] = ss;
  __syncthreads();
  if (warp == 0) {
    float s = lane < nwarps ? red[lane] : 0.f;
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    if (lane == 0) red[0] = rsqrtf(s / float(cols) + in.eps);
  }
  __syncthreads();
  const float inv = red[0];
  for (int i = threadIdx.x; i < cols; i += blockDim.x) dst[staged_index<SWZ>(i)] *= inv;
  __syncthreads();
}

}  // namespace qforge::cuda
