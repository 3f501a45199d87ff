// backends/cuda/cuda_linear_kernels.cu — the float-weight linear kernels: the decode GEMV (one
// launch for a list of layers sharing an input, one wave of blocks each staging the input once in
// shared memory with RMSNorm or SwiGLU folded in, rows split evenly over warps, L2 prefetch of the
// weights before the programmatic-dependent-launch wait, 16-byte weight loads, bias and residual
// add in the epilogue) and, for one token, the float row source of the streaming GEMV
// (cuda_gemv_stream.cuh); the input staging kernel in front of cuBLAS for prefill, bias add and the
// embedding lookup; also the PDL and streaming-GEMV switches (pdl_enabled, stream_gemv_config).
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <tuple>
#include <mutex>

#include "backends/cuda/cuda_gemv_stream.cuh"

namespace qforge::cuda {
namespace {

int g_num_sms = 132;
bool g_pdl = false;      // programmatic dependent launch for decode kernels (init_linear_kernels)
int g_max_smem = 48 * 1024;  // dynamic shared memory a block may use (raised in init_kernels)
StreamGemvConfig g_stream;   // the one-token streaming GEMV (init_linear_kernels reads the environment)

template <WType WT>
__device__ __forceinline__ float load_w(const void* p, size_t i) {
  if constexpr (WT == WType::F32) return static_cast<const float*>(p)[i];
  else if constexpr (WT == WType::F16) return __half2float(static_cast<const __half*>(p)[i]);
  else return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
}

template <WType WT>
__host__ __device__ constexpr size_t sizeof_w() { return WT == WType::F32 ? 4 : 2; }

// 16 bytes of weights → EPV floats.
template <WType WT>
__device__ __forceinline__ void unpack16(const uint4& u, float* f) {
  if constexpr (WT == WType::F32) {
    f[0] = __uint_as_float(u.x); f[1] = __uint_as_float(u.y); f[2] = __uint_as_float(u.z); f[3] = __uint_as_float(u.w);
  } else {
    const uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      if constexpr (WT == WType::F16) {
        __half2 h = *reinterpret_cast<const __half2*>(&w[j]);
        float2 v = __half22float2(h);
        f[2 * j] = v.x; f[2 * j + 1] = v.y;
      } else {
        // bf16 → f32 is a shift: exact and cheap.
        f[2 * j] = __uint_as_float(w[j] << 16);
        f[2 * j + 1] = __uint_as_float(w[j] & 0xffff0000u);
      }
    }
  }
}

constexpr int kWarps = 8;

// Warp w of W takes the contiguous rows [w*total/W, (w+1)*total/W) of all layers together (at most
// one row more than any other warp), in groups of RPW rows. Before waiting for the previous kernel
// (programmatic dependent launch) each warp asks L2 for its first rows: weights never depend on an
// earlier kernel, so their fetch overlaps the previous kernel's tail and this kernel's staging.
template <WType WT, int RPW, int NT, bool VEC>
__global__ void __launch_bounds__(kWarps * 32) gemv_kernel(const __grid_constant__ GemvBatch b, LinearInputDev in, int n, int t0, bool acc,
                                                           int total) {
  extern __shared__ float4 smem4[];
  float* red = reinterpret_cast<float*>(smem4);  // 32 floats
  float* xs = red + 32;                          // [n, cols]
  const int cols = b.cols;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t nw = int64_t(gridDim.x) * kWarps, gw = int64_t(blockIdx.x) * kWarps + warp;
  const int r_begin = int(gw * total / nw), r_end = int((gw + 1) * total / nw);
  {
    const size_t row_bytes = size_t(cols) * sizeof_w<WT>();
    const size_t span = size_t(r_end - r_begin) * row_bytes, want = span < 32768 ? span : 32768;
    int li = 0, lr = r_begin;
    while (li < b.n_layers && lr >= b.rows[li]) lr -= b.rows[li++];
    if (li < b.n_layers) {
      // Rows of one layer are contiguous; stop at the layer's end.
      const size_t avail = size_t(b.rows[li] - lr) * row_bytes;
      const char* p = static_cast<const char*>(b.w[li]) + size_t(lr) * row_bytes;
      const size_t bytes = want < avail ? want : avail;
      for (size_t o = size_t(lane) * 128; o < bytes; o += 32 * 128) asm volatile("prefetch.global.L2 [%0];" ::"l"(p + o));
    }
  }
  pdl_wait();
  pdl_launch_dependents();
  for (int t = 0; t < n; ++t) stage_linear_input(in, t0 + t, cols, xs + size_t(t) * cols, red);

  for (int row0 = r_begin; row0 < r_end; row0 += RPW) {
    const void* wp[RPW];
    int layer[RPW], lrow[RPW];
    bool valid[RPW];
#pragma unroll
    for (int r = 0; r < RPW; ++r) {
      int gr = row0 + r, li = 0;
      while (li < b.n_layers && gr >= b.rows[li]) gr -= b.rows[li++];
      valid[r] = li < b.n_layers && row0 + r < r_end;
      layer[r] = li < b.n_layers ? li : 0;
      lrow[r] = li < b.n_layers ? gr : 0;
      wp[r] = static_cast<const char*>(b.w[layer[r]]) + size_t(lrow[r]) * cols * sizeof_w<WT>();
    }
    float a[RPW][NT];
#pragma unroll
    for (int r = 0; r < RPW; ++r)
#pragma unroll
      for (int t = 0; t < NT; ++t) a[r][t] = 0.f;

    if constexpr (VEC) {
      // U batches of 16-byte loads per row are issued before any is used: U*RPW loads in flight.
      constexpr int EPV = WT == WType::F32 ? 4 : 8;
      constexpr int U = RPW == 1 ? 8 : RPW == 2 ? 4 : 2;
      for (int k0 = lane * EPV; k0 < cols; k0 += 32 * EPV * U) {
        uint4 u[U][RPW];
#pragma unroll
        for (int j = 0; j < U; ++j) {
          const int k = k0 + j * 32 * EPV;
#pragma unroll
          for (int r = 0; r < RPW; ++r)
            u[j][r] = valid[r] && k < cols
                          ? __ldg(reinterpret_cast<const uint4*>(static_cast<const char*>(wp[r]) + size_t(k) * sizeof_w<WT>()))
                          : make_uint4(0, 0, 0, 0);
        }
#pragma unroll
        for (int j = 0; j < U; ++j) {
          const int k = k0 + j * 32 * EPV;
          if (k >= cols) break;
#pragma unroll
          for (int r = 0; r < RPW; ++r) {
            float f[EPV];
            unpack16<WT>(u[j][r], f);
#pragma unroll
            for (int t = 0; t < NT; ++t) {
              if (t < n) {
                const float4* xv = reinterpret_cast<const float4*>(xs + size_t(t) * cols + k);
#pragma unroll
                for (int q = 0; q < EPV / 4; ++q) {
                  const float4 x4 = xv[q];
                  a[r][t] += f[4 * q] * x4.x + f[4 * q + 1] * x4.y + f[4 * q + 2] * x4.z + f[4 * q + 3] * x4.w;
                }
              }
            }
          }
        }
      }
    } else {
      for (int k = lane; k < cols; k += 32) {
#pragma unroll
        for (int r = 0; r < RPW; ++r) {
          float w = valid[r] ? load_w<WT>(wp[r], k) : 0.f;
#pragma unroll
          for (int t = 0; t < NT; ++t)
            if (t < n) a[r][t] += w * xs[size_t(t) * cols + k];
        }
      }
    }
#pragma unroll
    for (int r = 0; r < RPW; ++r)
#pragma unroll
      for (int t = 0; t < NT; ++t) {
        float v = a[r][t];
        for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
        if (lane == 0 && valid[r] && t < n) {
          const int rows = b.rows[layer[r]];
          float* y = b.y[layer[r]] + size_t(t0 + t) * rows + lrow[r];
          if (b.bias[layer[r]]) v += b.bias[layer[r]][lrow[r]];
          *y = acc ? *y + v : v;
        }
      }
  }
}

// One token (decode): the float rows of a GemvBatch as a source of the streaming GEMV
// (cuda_gemv_stream.cuh): units of one row x 1024 (bf16/f16) or 512 (f32) columns, 16-byte loads.
template <WType WT>
struct FloatRows {
  using Args = GemvBatch;
  static constexpr int kEpv = WT == WType::F32 ? 4 : 8;  // weights per 16 bytes
  static constexpr int kChunk = 32 * kEpv * kStreamLoads;
  // A lane's 16 bytes of bf16 / f16 weights meet 2 input chunks: a 2-way bank conflict, which the swizzle
  // removes, yet TinyLlama bf16 decode measured 3-4% slower with it (H100, alternating runs: 776 / 770
  // vs 801 / 803 tok/s), so float rows keep the plain layout.
  static constexpr int kSwizzle = 1;
  static constexpr bool kBlockSums = false;
  struct Frag {
    uint4 u[kStreamLoads];
  };
  // Global row of the batch -> (layer, row in that layer).
  __device__ static int layer(const GemvBatch& b, int& row) {
    int li = 0;
    while (li + 1 < b.n_layers && row >= b.rows[li]) row -= b.rows[li++];
    return li;
  }
  __device__ static void load(const GemvBatch& b, int row, int c, int lane, Frag& f) {
    const int li = layer(b, row);
    const char* p = static_cast<const char*>(b.w[li]) + size_t(row) * b.cols * sizeof_w<WT>();
#pragma unroll
    for (int j = 0; j < kStreamLoads; ++j) {
      const int k = c * kChunk + (j * 32 + lane) * kEpv;
      f.u[j] = k < b.cols ? __ldg(reinterpret_cast<const uint4*>(p + size_t(k) * sizeof_w<WT>())) : make_uint4(0, 0, 0, 0);
    }
  }
  __device__ static float dot(const GemvBatch& b, const Frag& fr, const float* xs, const float*, int c, int lane) {
    float s0 = 0.f, s1 = 0.f;
#pragma unroll
    for (int j = 0; j < kStreamLoads; ++j) {
      const int k = c * kChunk + (j * 32 + lane) * kEpv;
      if (k < b.cols) {
        float f[kEpv];
        unpack16<WT>(fr.u[j], f);
        const float4* xv = reinterpret_cast<const float4*>(xs);
#pragma unroll
        for (int q = 0; q < kEpv / 4; ++q) {
          const float4 x4 = xv[staged_chunk<kSwizzle>(k / 4 + q)];
          (q & 1 ? s1 : s0) += f[4 * q] * x4.x + f[4 * q + 1] * x4.y + f[4 * q + 2] * x4.z + f[4 * q + 3] * x4.w;
        }
      }
    }
    return s0 + s1;
  }
  __device__ static void store(const GemvBatch& b, int row, float v, bool acc) {
    const int li = layer(b, row);
    if (b.bias[li]) v += b.bias[li][row];
    float* y = b.y[li] + row;
    *y = acc ? *y + v : v;
  }
};

// Takes the streaming GEMV when the layout allows it (16-byte aligned rows, input and unit sums fit in
// shared memory); returns false otherwise (the caller takes the general kernel).
template <WType WT>
bool try_gemv1(const GemvBatch& b, const LinearInputDev& in, bool acc, cudaStream_t s) {
  int total = 0;
  for (int i = 0; i < b.n_layers; ++i) {
    total += b.rows[i];
    if (reinterpret_cast<uintptr_t>(b.w[i]) % 16 != 0) return false;
  }
  if (b.cols % FloatRows<WT>::kEpv != 0) return false;
  return launch_stream_gemv<FloatRows<WT>>(b, in, b.cols, b.cols, total, acc, s);
}

int occupancy(const void* kernel, size_t smem) { return resident_blocks(kernel, kWarps * 32, smem); }

template <WType WT, int RPW, int NT, bool VEC>
void launch_gemv_k(const GemvBatch& b, const LinearInputDev& in, int n, int t0, bool acc, int total, int blocks,
                   size_t smem, cudaStream_t s) {
  launch_pdl(gemv_kernel<WT, RPW, NT, VEC>, dim3(unsigned(blocks)), dim3(kWarps * 32), smem, s, b, in, n, t0, acc, total);
}

template <WType WT, int NT, bool VEC>
void launch_gemv(const GemvBatch& b, const LinearInputDev& in, int n, int t0, bool acc, int total, size_t smem,
                 cudaStream_t s) {
  // One wave: as many blocks as fit (every block stages the input once), but at least one row per warp;
  // rows per warp then pick how many rows a warp streams at a time.
  const int per_sm = std::min(occupancy(reinterpret_cast<const void*>(gemv_kernel<WT, 1, NT, VEC>), smem),
                              occupancy(reinterpret_cast<const void*>(gemv_kernel<WT, 4, NT, VEC>), smem));
  const int blocks = std::max(1, std::min((total + kWarps - 1) / kWarps, per_sm * g_num_sms));
  const int per_warp = (total + blocks * kWarps - 1) / (blocks * kWarps);
  if (per_warp >= 4) launch_gemv_k<WT, 4, NT, VEC>(b, in, n, t0, acc, total, blocks, smem, s);
  else if (per_warp >= 2) launch_gemv_k<WT, 2, NT, VEC>(b, in, n, t0, acc, total, blocks, smem, s);
  else launch_gemv_k<WT, 1, NT, VEC>(b, in, n, t0, acc, total, blocks, smem, s);
}

template <WType WT>
void gemv_typed(const GemvBatch& b, const LinearInputDev& in, int n, int t0, bool acc, cudaStream_t s) {
  int total = 0;
  bool vec = true;
  constexpr int epv = WT == WType::F32 ? 4 : 8;
  for (int i = 0; i < b.n_layers; ++i) {
    total += b.rows[i];
    vec = vec && (reinterpret_cast<uintptr_t>(b.w[i]) % 16 == 0);
  }
  vec = vec && b.cols % epv == 0;
  const size_t smem = (32 + size_t(n) * b.cols) * sizeof(float);
  if (n == 1) {
    if (vec) launch_gemv<WT, 1, true>(b, in, n, t0, acc, total, smem, s);
    else launch_gemv<WT, 1, false>(b, in, n, t0, acc, total, smem, s);
  } else {
    if (vec) launch_gemv<WT, kMaxGemvTokens, true>(b, in, n, t0, acc, total, smem, s);
    else launch_gemv<WT, kMaxGemvTokens, false>(b, in, n, t0, acc, total, smem, s);
  }
}

template <WType WT, int RPW, int NT, bool VEC>
void raise_smem() {
  QF_CUDA(cudaFuncSetAttribute(gemv_kernel<WT, RPW, NT, VEC>, cudaFuncAttributeMaxDynamicSharedMemorySize, g_max_smem));
}
template <WType WT>
void raise_smem_all() {
  raise_smem<WT, 1, 1, true>(); raise_smem<WT, 1, 1, false>(); raise_smem<WT, 2, 1, true>(); raise_smem<WT, 2, 1, false>();
  raise_smem<WT, 1, kMaxGemvTokens, true>(); raise_smem<WT, 1, kMaxGemvTokens, false>();
  raise_smem<WT, 2, kMaxGemvTokens, true>(); raise_smem<WT, 2, kMaxGemvTokens, false>();
  raise_smem<WT, 4, 1, true>(); raise_smem<WT, 4, 1, false>();
  raise_smem<WT, 4, kMaxGemvTokens, true>(); raise_smem<WT, 4, kMaxGemvTokens, false>();
}


// One block per token; with `amax` also max |out| over all tokens (float bits; zeroed before), for the
// FP8 prefill path's per-tensor activation scale (saves it a pass over the staged input). VEC: cols % 4
// == 0 and every pointer 16-byte aligned, so a thread moves four values per load (the kernel is a pure
// stream: prefill stages 25-115 MB per linear call).
template <WType OT>
__device__ __forceinline__ void store_staged(void* out, size_t o, float v) {
  if constexpr (OT == WType::F32) static_cast<float*>(out)[o] = v;
  else if constexpr (OT == WType::F16) static_cast<__half*>(out)[o] = __float2half_rn(v);
  else static_cast<__nv_bfloat16*>(out)[o] = __float2bfloat16_rn(v);
}
template <WType OT>
__device__ __forceinline__ void store_staged4(void* out, size_t o, float4 v) {  // o % 4 == 0
  if constexpr (OT == WType::F32) {
    *reinterpret_cast<float4*>(static_cast<float*>(out) + o) = v;
  } else if constexpr (OT == WType::F16) {
    const __half2 a = __floats2half2_rn(v.x, v.y), b = __floats2half2_rn(v.z, v.w);
    *reinterpret_cast<uint2*>(static_cast<__half*>(out) + o) =
        make_uint2(*reinterpret_cast<const uint32_t*>(&a), *reinterpret_cast<const uint32_t*>(&b));
  } else {
    const __nv_bfloat162 a = __floats2bfloat162_rn(v.x, v.y), b = __floats2bfloat162_rn(v.z, v.w);
    *reinterpret_cast<uint2*>(static_cast<__nv_bfloat16*>(out) + o) =
        make_uint2(*reinterpret_cast<const uint32_t*>(&a), *reinterpret_cast<const uint32_t*>(&b));
  }
}

template <WType OT, bool VEC>
__global__ void stage_kernel(LinearInputDev in, int cols, void* out, unsigned* amax) {
  __shared__ float red[32];
  const int t = blockIdx.x;
  const float* x = in.x + size_t(t) * cols;
  const float* up = in.up ? in.up + size_t(t) * cols : nullptr;
  const size_t row = size_t(t) * cols;
  const int c4 = VEC ? cols / 4 : 0;
  float inv = 1.f;
  if (in.rms_w) {
    float ss = 0.f;
    for (int i = threadIdx.x; i < c4; i += blockDim.x) {
      const float4 v = reinterpret_cast<const float4*>(x)[i];
      ss += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
    }
    for (int i = 4 * c4 + threadIdx.x; i < cols; i += blockDim.x) ss += x[i] * x[i];
    for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = ss;
    __syncthreads();
    if (threadIdx.x < 32) {
      float v = threadIdx.x < (blockDim.x >> 5) ? red[threadIdx.x] : 0.f;
      for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
      if (threadIdx.x == 0) red[0] = rsqrtf(v / float(cols) + in.eps);
    }
    __syncthreads();
    inv = red[0];
  }
  float m = 0.f;
  for (int i = threadIdx.x; i < c4; i += blockDim.x) {
    float4 v = reinterpret_cast<const float4*>(x)[i];
    if (up) {
      const float4 u = reinterpret_cast<const float4*>(up)[i];
      v = make_float4(silu_times(v.x, u.x), silu_times(v.y, u.y), silu_times(v.z, u.z), silu_times(v.w, u.w));
    } else if (in.rms_w) {
      const float4 w = reinterpret_cast<const float4*>(in.rms_w)[i];
      v = make_float4(v.x * inv * w.x, v.y * inv * w.y, v.z * inv * w.z, v.w * inv * w.w);
    }
    store_staged4<OT>(out, row + 4 * size_t(i), v);
    m = fmaxf(m, fmaxf(fmaxf(fabsf(v.x), fabsf(v.y)), fmaxf(fabsf(v.z), fabsf(v.w))));
  }
  for (int i = 4 * c4 + threadIdx.x; i < cols; i += blockDim.x) {
    const float v = up ? silu_times(x[i], up[i]) : in.rms_w ? x[i] * inv * in.rms_w[i] : x[i];
    store_staged<OT>(out, row + i, v);
    m = fmaxf(m, fabsf(v));
  }
  if (!amax) return;  // block-uniform
  m = block_max(m, red);
  if (threadIdx.x == 0) atomicMax(amax, __float_as_uint(m));
}

// Eight values per thread and step where the pointers are 16-byte aligned (VEC), else one.
template <bool VEC>
__global__ void swiglu_bf16_kernel(__nv_bfloat16* gate, const __nv_bfloat16* up, int64_t count, unsigned* amax) {
  __shared__ float red[32];
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  float m = 0.f;
  if constexpr (VEC) {
    for (; i < count / 8; i += stride) {
      uint4 g = reinterpret_cast<const uint4*>(gate)[i];
      const uint4 u = reinterpret_cast<const uint4*>(up)[i];
      auto* gp = reinterpret_cast<__nv_bfloat162*>(&g);
      const auto* up2 = reinterpret_cast<const __nv_bfloat162*>(&u);
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const float2 gf = __bfloat1622float2(gp[j]), uf = __bfloat1622float2(up2[j]);
        gp[j] = __floats2bfloat162_rn(silu_times(gf.x, uf.x), silu_times(gf.y, uf.y));
        const float2 r = __bfloat1622float2(gp[j]);
        m = fmaxf(m, fmaxf(fabsf(r.x), fabsf(r.y)));
      }
      reinterpret_cast<uint4*>(gate)[i] = g;
    }
    i = count / 8 * 8 + blockIdx.x * int64_t(blockDim.x) + threadIdx.x;  // the tail
  }
  for (; i < count; i += stride) {
    gate[i] = __float2bfloat16_rn(silu_times(__bfloat162float(gate[i]), __bfloat162float(up[i])));
    m = fmaxf(m, fabsf(__bfloat162float(gate[i])));
  }
  if (!amax) return;  // grid-uniform
  m = block_max(m, red);
  if (threadIdx.x == 0) atomicMax(amax, __float_as_uint(m));
}

__global__ void bias_kernel(float* y, const float* bias, int64_t total, int rows) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x)
    y[i] += bias[i % rows];
}

template <WType WT>
__global__ void embed_kernel(const void* table, int64_t cols, const int32_t* ids, float* out) {
  pdl_wait();
  pdl_launch_dependents();
  const int64_t row = ids[blockIdx.x];
  for (int64_t i = threadIdx.x; i < cols; i += blockDim.x)
    out[blockIdx.x * cols + i] = load_w<WT>(table, size_t(row * cols + i));
}

}  // namespace

void gemv(const GemvBatch& b, WType wt, const LinearInputDev& in, int n, bool accumulate, cudaStream_t s) {
  const size_t per_token = size_t(b.cols) * sizeof(float);
  const int chunk = int(std::min<size_t>(kMaxGemvTokens, (size_t(g_max_smem) - 32 * sizeof(float)) / per_token));
  if (chunk < 1)
    throw Error("cuda: linear input of " + std::to_string(b.cols) + " columns does not fit in shared memory");
  if (n == 1 && g_stream.on) {
    bool done = false;
    switch (wt) {
      case WType::F32: done = try_gemv1<WType::F32>(b, in, accumulate, s); break;
      case WType::F16: done = try_gemv1<WType::F16>(b, in, accumulate, s); break;
      case WType::BF16: done = try_gemv1<WType::BF16>(b, in, accumulate, s); break;
    }
    if (done) return;
  }
  for (int t0 = 0; t0 < n; t0 += chunk) {
    const int nt = std::min(chunk, n - t0);
    switch (wt) {
      case WType::F32: gemv_typed<WType::F32>(b, in, nt, t0, accumulate, s); break;
      case WType::F16: gemv_typed<WType::F16>(b, in, nt, t0, accumulate, s); break;
      case WType::BF16: gemv_typed<WType::BF16>(b, in, nt, t0, accumulate, s); break;
    }
  }
}

void swiglu_bf16_inplace(void* gate, const void* up, int64_t count, cudaStream_t s, unsigned* amax) {
  if (count == 0) return;
  const bool vec = ((reinterpret_cast<uintptr_t>(gate) | reinterpret_cast<uintptr_t>(up)) & 15) == 0;
  const int blocks = int(std::min<int64_t>((count / (vec ? 8 : 1) + 255) / 256, 132 * 16));
  auto* g = static_cast<__nv_bfloat16*>(gate);
  const auto* u = static_cast<const __nv_bfloat16*>(up);
  if (vec) swiglu_bf16_kernel<true><<<blocks, 256, 0, s>>>(g, u, count, amax);
  else swiglu_bf16_kernel<false><<<blocks, 256, 0, s>>>(g, u, count, amax);
  QF_CUDA(cudaGetLastError());
}

void stage_input(const LinearInputDev& in, int64_t n, int cols, void* out, WType ot, cudaStream_t s, unsigned* amax) {
  if (n == 0) return;
  const auto a16 = [](const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; };
  const bool vec = cols % 4 == 0 && a16(in.x) && a16(in.rms_w) && a16(in.up) && a16(out);
  const auto launch = [&](auto kernel) { kernel<<<unsigned(n), 256, 0, s>>>(in, cols, out, amax); };
  switch (ot) {
    case WType::F32: vec ? launch(stage_kernel<WType::F32, true>) : launch(stage_kernel<WType::F32, false>); break;
    case WType::F16: vec ? launch(stage_kernel<WType::F16, true>) : launch(stage_kernel<WType::F16, false>); break;
    case WType::BF16: vec ? launch(stage_kernel<WType::BF16, true>) : launch(stage_kernel<WType::BF16, false>); break;
  }
  QF_CUDA(cudaGetLastError());
}

void add_bias(float* y, const float* bias, int64_t n, int rows, cudaStream_t s) {
  const int64_t total = n * rows;
  const int blocks = int(std::min<int64_t>((total + 255) / 256, 4096));
  bias_kernel<<<blocks, 256, 0, s>>>(y, bias, total, rows);
  QF_CUDA(cudaGetLastError());
}

void embed(const void* table, WType t, int64_t cols, const int32_t* ids, int64_t n, float* out, cudaStream_t s) {
  if (n == 0) return;
  switch (t) {
    case WType::F32: launch_pdl(embed_kernel<WType::F32>, dim3(unsigned(n)), dim3(256), 0, s, table, cols, ids, out); break;
    case WType::F16: launch_pdl(embed_kernel<WType::F16>, dim3(unsigned(n)), dim3(256), 0, s, table, cols, ids, out); break;
    case WType::BF16: launch_pdl(embed_kernel<WType::BF16>, dim3(unsigned(n)), dim3(256), 0, s, table, cols, ids, out); break;
  }
}

bool pdl_enabled() { return g_pdl; }
const StreamGemvConfig& stream_gemv_config() { return g_stream; }

void init_linear_kernels(int device) {
  QF_CUDA(cudaDeviceGetAttribute(&g_num_sms, cudaDevAttrMultiProcessorCount, device));
  int major = 0;
  QF_CUDA(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  const char* g1 = std::getenv("QFORGE_CUDA_GEMV1");
  g_stream.on = !(g1 && std::strcmp(g1, "0") == 0);
  const char* e = std::getenv("QFORGE_CUDA_PDL");
  // On by default on sm_90+ (QFORGE_CUDA_PDL=0 turns it off): with the one-token GEMV in 512-thread
  // blocks, the next kernel's blocks start as this one's retire and request their weights early
  // (H100, TinyLlama bf16 decode 649 -> 760 tok/s, Llama-3-8B 147 -> 156; perf-notes round 3).
  g_pdl = major >= 9 && !(e && std::strcmp(e, "0") == 0);
  init_attention_decode(device);
  int optin = 0;
  QF_CUDA(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  g_max_smem = std::max(48 * 1024, optin);
  const char* g1t = std::getenv("QFORGE_CUDA_GEMV1_THREADS");
  g_stream.threads = g1t && std::strcmp(g1t, "1024") == 0 ? 1024 : 512;
  const char* g1b = std::getenv("QFORGE_CUDA_GEMV1_PER_SM");
  g_stream.per_sm = g1b ? std::max(1, std::min(4, std::atoi(g1b))) : 1024 / g_stream.threads;
  raise_smem_all<WType::F32>();
  raise_smem_all<WType::F16>();
  raise_smem_all<WType::BF16>();
}


int resident_blocks(const void* kernel, int threads, size_t smem) {
  static std::mutex mu;
  static std::map<std::tuple<const void*, int, size_t, int>, int> cache;
  static std::map<std::pair<const void*, int>, size_t> opted;  // (kernel, device) -> opt-in set so far
  std::lock_guard<std::mutex> lock(mu);
  int dev = 0;
  QF_CUDA(cudaGetDevice(&dev));
  auto it = cache.find({kernel, threads, smem, dev});
  if (it != cache.end()) return it->second;
  // Dynamic + static above 48 KB needs the opt-in. It only ever grows: a smaller size asked later must
  // not lower the limit under a larger size cached earlier (that launch would fail).
  size_t& limit = opted[{kernel, dev}];
  if (smem > 40 * 1024 && smem + 1024 > limit) {
    QF_CUDA(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem) + 1024));
    limit = smem + 1024;
  }
  int per_sm = 0;
  QF_CUDA(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, smem));
  return cache[{kernel, threads, smem, dev}] = std::max(1, per_sm);
}

int device_smem_optin() {
  static int cached[64] = {};
  int dev = 0;
  QF_CUDA(cudaGetDevice(&dev));
  if (dev >= 64) dev = 63;
  if (!cached[dev]) {
    int v = 0;
    QF_CUDA(cudaDeviceGetAttribute(&v, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
    cached[dev] = std::max(48 * 1024, v);
  }
  return cached[dev];
}

int device_sm_count() {
  static const int n = [] {
    int dev = 0, v = 0;
    QF_CUDA(cudaGetDevice(&dev));
    QF_CUDA(cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, dev));
    return v;
  }();
  return n;
}

}  // namespace qforge::cuda
