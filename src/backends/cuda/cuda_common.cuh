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

// Block-cooperative: writes the staged input of token t (cols floats) into shared memory `dst`.
// Every thread of the block must call it; ends with __syncthreads(). `red` is >= 32 floats of
// shared scratch. The RMS reduction is in f32 (reference: double; documented tolerance).
__device__ inline void stage_linear_input(const LinearInputDev& in, int t, int cols, float* dst, float* red) {
  const float* x = in.x + size_t(t) * cols;
  if (in.up) {
    const float* u = in.up + size_t(t) * cols;
    for (int i = threadIdx.x; i < cols; i += blockDim.x) {
      float g = x[i];
      dst[i] = g / (1.f + __expf(-g)) * u[i];
    }
    __syncthreads();
    return;
  }
  if (!in.rms_w) {
    for (int i = threadIdx.x; i < cols; i += blockDim.x) dst[i] = x[i];
    __syncthreads();
    return;
  }
  float ss = 0.f;
  if (cols % 4 == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0 && reinterpret_cast<uintptr_t>(dst) % 16 == 0) {
    // 16-byte loads: fewer, wider requests in this latency-bound prologue of every GEMV block.
    const float4* x4 = reinterpret_cast<const float4*>(x);
    float4* d4 = reinterpret_cast<float4*>(dst);
    for (int i = threadIdx.x; i < cols / 4; i += blockDim.x) {
      const float4 v = x4[i];
      d4[i] = v;
      ss += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
    }
  } else {
    for (int i = threadIdx.x; i < cols; i += blockDim.x) {
      float v = x[i];
      dst[i] = v;
      ss += v * v;
    }
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
  for (int i = threadIdx.x; i < cols; i += blockDim.x) dst[i] = dst[i] * inv * in.rms_w[i];
  __syncthreads();
}

}  // namespace qforge::cuda
