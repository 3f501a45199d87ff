// backends/cuda/cuda_gemv_stream.cuh — the one-token (decode) streaming GEMV shared by the float-weight
// rows (cuda_linear_kernels.cu) and the 8-bit quantized rows (cuda_quant_gemv.cu). The rows of every
// weight of a launch are cut into units of one row x Src::kChunk columns; block b takes an even share
// of the rows and its warps an even share of those units, so short rows (down projection) and few rows
// (q/k/v) still keep every warp streaming. Each warp requests its first two units (four 16-byte loads
// per lane each) before the block stages the input (weights depend on no earlier kernel: programmatic
// dependent launch), then keeps one unit in flight while it multiplies the other. A unit's warp-reduced
// sum goes to shared memory; after a barrier each row adds its units in order (deterministic, no
// atomics) and the source's epilogue scales / adds bias and residual.
//
// A row source Src provides:
//   using Args; struct Frag (the registers of one unit); static constexpr int kChunk;
//   static constexpr int kSwizzle;  // 16-byte input chunks a lane reads per load: the staging swizzle
//                                   // (stage_linear_input), so reads go through staged_chunk<kSwizzle>
//   __device__ static void load(const Args&, int row, int c, int lane, Frag&);   // row over all weights
//   __device__ static float dot(const Args&, const Frag&, const float* xs, const float* xsum, int c, int lane);
//   __device__ static void store(const Args&, int row, float v, bool acc);
//   static constexpr bool kBlockSums;  // the source's dot reads xsum[k / 16], the input's sums per 16 elements
// The input is staged in shared memory over [0, klim) floats (zero past cols; klim a multiple of
// 4 * kSwizzle), so a source may read whole 16-byte groups up to klim.
#pragma once
#include <algorithm>
#include <cstdint>

#include "backends/cuda/cuda_kernels.cuh"

namespace qforge::cuda {

constexpr int kStreamLoads = 4;  // 16-byte loads per lane per unit

template <class Src, int THREADS>
__global__ void __launch_bounds__(THREADS, 1024 / THREADS)
    stream_gemv_kernel(const __grid_constant__ typename Src::Args a, LinearInputDev in, int cols, int klim, bool acc,
                       int total, int nch) {
  extern __shared__ float4 smem4[];
  float* red = reinterpret_cast<float*>(smem4);
  float* xs = red + 32;
  float* xsum = xs + ((klim + 3) & ~3);  // Src::kBlockSums: klim / 16 sums
  float* part = xsum + (Src::kBlockSums ? klim / 16 : 0);
  const int rb0 = int(int64_t(blockIdx.x) * total / gridDim.x), rb1 = int(int64_t(blockIdx.x + 1) * total / gridDim.x);
  const int units = (rb1 - rb0) * nch, warps = blockDim.x >> 5;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int u0 = warp * units / warps, u1 = (warp + 1) * units / warps;
  typename Src::Frag A, B;
  if (u0 < u1) Src::load(a, rb0 + u0 / nch, u0 % nch, lane, A);
  if (u0 + 1 < u1) Src::load(a, rb0 + (u0 + 1) / nch, (u0 + 1) % nch, lane, B);
  pdl_wait();
  pdl_launch_dependents();
  stage_linear_input<2, Src::kSwizzle>(in, 0, cols, xs, red);
  if (klim > cols) {  // block-uniform
    for (int i = cols + threadIdx.x; i < klim; i += blockDim.x) xs[staged_index<Src::kSwizzle>(i)] = 0.f;
    __syncthreads();
  }
  if constexpr (Src::kBlockSums) {  // once per block instead of once per row
    for (int b = threadIdx.x; b < klim / 16; b += blockDim.x) {
      float s = 0.f;
#pragma unroll
      for (int q = 0; q < 4; ++q) {
        const float4 x4 = reinterpret_cast<const float4*>(xs)[staged_chunk<Src::kSwizzle>(4 * b + q)];
        s += (x4.x + x4.y) + (x4.z + x4.w);
      }
      xsum[b] = s;
    }
    __syncthreads();
  }
  auto reduce = [](float s) {
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    return s;
  };
  for (int u = u0; u < u1; u += 2) {
    float s = reduce(Src::dot(a, A, xs, xsum, u % nch, lane));
    if (lane == 0) part[u] = s;
    if (u + 2 < u1) Src::load(a, rb0 + (u + 2) / nch, (u + 2) % nch, lane, A);
    if (u + 1 < u1) {
      s = reduce(Src::dot(a, B, xs, xsum, (u + 1) % nch, lane));
      if (lane == 0) part[u + 1] = s;
      if (u + 3 < u1) Src::load(a, rb0 + (u + 3) / nch, (u + 3) % nch, lane, B);
    }
  }
  __syncthreads();
  for (int r = threadIdx.x; r < rb1 - rb0; r += blockDim.x) {
    float v = 0.f;
    for (int c = 0; c < nch; ++c) v += part[r * nch + c];
    Src::store(a, rb0 + r, v, acc);
  }
}

template <class Src, int THREADS>
void launch_stream_gemv_as(const typename Src::Args& a, const LinearInputDev& in, int cols, int klim, bool acc, int total,
                           int nch, int blocks, size_t smem, cudaStream_t s) {
  // Opts the kernel in to `smem` (grow-only, per kernel and device); two 512-thread blocks then share an
  // SM only when both fit: occupancy, not correctness.
  (void)resident_blocks(reinterpret_cast<const void*>(stream_gemv_kernel<Src, THREADS>), THREADS, smem);
  launch_pdl(stream_gemv_kernel<Src, THREADS>, dim3(unsigned(blocks)), dim3(unsigned(THREADS)), smem, s, a, in, cols,
             klim, acc, total, nch);
}

// Launches stream_gemv_kernel<Src> over `total` rows of `klim` staged columns (cols of them real); returns
// false when the input and the unit sums do not fit in shared memory (the caller takes its general kernel).
template <class Src>
bool launch_stream_gemv(const typename Src::Args& a, const LinearInputDev& in, int cols, int klim, int total, bool acc,
                        cudaStream_t s) {
  const StreamGemvConfig& cfg = stream_gemv_config();
  if (!cfg.on || total <= 0) return false;
  const int nch = (klim + Src::kChunk - 1) / Src::kChunk;
  const int64_t units = int64_t(total) * nch;
  // One wave (per_sm blocks per SM), each block with at least ~2 units per warp; more blocks when the
  // unit sums would not fit (huge vocabularies).
  int blocks = int(std::min<int64_t>(int64_t(device_sm_count()) * cfg.per_sm, (units + 31) / 32));
  const int64_t max_units = 8192;
  blocks = int(std::max<int64_t>(blocks, (units + max_units - 1) / max_units));
  blocks = std::max(1, std::min(blocks, total));
  const int64_t rows_per_block = (total + blocks - 1) / blocks;
  const size_t smem = (32 + size_t((klim + 3) & ~3) + (Src::kBlockSums ? size_t(klim / 16) : 0) + size_t(rows_per_block * nch)) *
                      sizeof(float);
  if (smem + 1024 > size_t(device_smem_optin())) return false;  // resident_blocks opts in smem + 1 KB
  if (cfg.threads == 1024) launch_stream_gemv_as<Src, 1024>(a, in, cols, klim, acc, total, nch, blocks, smem, s);
  else launch_stream_gemv_as<Src, 512>(a, in, cols, klim, acc, total, nch, blocks, smem, s);
  return true;
}

}  // namespace qforge::cuda
