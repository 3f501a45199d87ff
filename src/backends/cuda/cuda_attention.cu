// backends/cuda/cuda_attention.cu — prefill attention on the GPU: rope applied to q/k with k/v
// written into the f32 caches (one kernel), then a tiled online-softmax kernel (f32 CUDA cores; K/V
// tiles in shared memory). Decode (one token) lives in cuda_attention_decode.cu.
#include <algorithm>
#include <cmath>

#include "backends/cuda/cuda_kernels.cuh"

namespace qforge::cuda {
void init_linear_kernels(int device);

namespace {

constexpr int kQB = 32;       // queries per prefill block (4 threads each)
constexpr int kKT = 32;       // keys per prefill tile

__device__ __forceinline__ int cur_pos0(const AttnArgs& a) { return a.pos_dev ? *a.pos_dev : a.pos0; }

__global__ void rope_cache_kernel(AttnArgs a) {
  const int i = blockIdx.x, h = blockIdx.y, half = a.hd / 2, kvd = a.kv_heads * a.hd;
  const int pos = cur_pos0(a) + i;
  const float* c = a.rope_cos + size_t(pos) * half;
  const float* s = a.rope_sin + size_t(pos) * half;
  if (h < a.heads + a.kv_heads) {
    const bool is_q = h < a.heads;
    float* v = is_q ? a.q + (size_t(i) * a.heads + h) * a.hd : a.k + (size_t(i) * a.kv_heads + (h - a.heads)) * a.hd;
    float* dst = is_q ? nullptr : a.k_cache + size_t(pos) * kvd + size_t(h - a.heads) * a.hd;
    for (int j = threadIdx.x; j < half; j += blockDim.x) {
      const float x0 = v[j], x1 = v[j + half];
      const float r0 = x0 * c[j] - x1 * s[j], r1 = x1 * c[j] + x0 * s[j];
      v[j] = r0;
      v[j + half] = r1;
      if (dst) {
        dst[j] = r0;
        dst[j + half] = r1;
      }
    }
  } else {
    const int vh = h - a.heads - a.kv_heads;
    const float* src = a.v + (size_t(i) * a.kv_heads + vh) * a.hd;
    float* dst = a.v_cache + size_t(pos) * kvd + size_t(vh) * a.hd;
    for (int j = threadIdx.x; j < a.hd; j += blockDim.x) dst[j] = src[j];
  }
}

// grid (ceil(n/32), heads), 128 threads: 4 threads per query, each holding dims sub, sub+4, ...
template <int S>
__global__ void __launch_bounds__(128) prefill_kernel(AttnArgs a) {
  extern __shared__ float smem[];
  const int hd = a.hd, G = a.heads / a.kv_heads, kvd = a.kv_heads * hd;
  float* ks = smem;              // [kKT, hd]
  float* vs = smem + kKT * hd;   // [kKT, hd]
  const int h = blockIdx.y, kvh = h / G, sub = threadIdx.x & 3;
  const int qi = blockIdx.x * kQB + (threadIdx.x >> 2);
  const int pos0 = cur_pos0(a);
  const bool valid = qi < a.n;
  const int pos = pos0 + qi;
  const int first = a.window > 0 ? max(0, pos - a.window + 1) : 0;
  const float scale = rsqrtf(float(hd));
  float q[S], acc[S];
#pragma unroll
  for (int j = 0; j < S; ++j) {
    const int d = sub + 4 * j;
    q[j] = valid && d < hd ? a.q[(size_t(qi) * a.heads + h) * hd + d] * scale : 0.f;
    acc[j] = 0.f;
  }
  float m = -INFINITY, l = 0.f;
  const int q_first = blockIdx.x * kQB, q_last = min(a.n, q_first + kQB) - 1;
  const int kbeg = a.window > 0 ? max(0, pos0 + q_first - a.window + 1) : 0;
  const int kend = pos0 + q_last + 1;
  for (int kt = kbeg; kt < kend; kt += kKT) {
    __syncthreads();
    for (int idx = threadIdx.x; idx < kKT * hd; idx += blockDim.x) {
      const int r = idx / hd, d = idx % hd, p = kt + r;
      const bool in = p < kend;
      ks[idx] = in ? a.k_cache[size_t(p) * kvd + size_t(kvh) * hd + d] : 0.f;
      vs[idx] = in ? a.v_cache[size_t(p) * kvd + size_t(kvh) * hd + d] : 0.f;
    }
    __syncthreads();
    const int jmax = min(kKT, kend - kt);
    for (int r = 0; r < jmax; ++r) {
      const float* kr = ks + r * hd;
      float part = 0.f;
#pragma unroll
      for (int j = 0; j < S; ++j)
        if (sub + 4 * j < hd) part += q[j] * kr[sub + 4 * j];
      part += __shfl_xor_sync(0xffffffffu, part, 1);
      part += __shfl_xor_sync(0xffffffffu, part, 2);
      const int p = kt + r;
      if (valid && p <= pos && p >= first) {
        if (part > m) {
          const float corr = expf(m - part);
          l *= corr;
#pragma unroll
          for (int j = 0; j < S; ++j) acc[j] *= corr;
          m = part;
        }
        const float e = expf(part - m);
        l += e;
        const float* vr = vs + r * hd;
#pragma unroll
        for (int j = 0; j < S; ++j)
          if (sub + 4 * j < hd) acc[j] += e * vr[sub + 4 * j];
      }
    }
  }
  if (!valid) return;
  const float inv = 1.f / l;
#pragma unroll
  for (int j = 0; j < S; ++j) {
    const int d = sub + 4 * j;
    if (d < hd) a.out[(size_t(qi) * a.heads + h) * hd + d] = acc[j] * inv;
  }
}

int g_max_smem = 48 * 1024;

}  // namespace

void rope_and_cache(const AttnArgs& a, cudaStream_t s) {
  dim3 grid(unsigned(a.n), unsigned(a.heads + 2 * a.kv_heads));
  rope_cache_kernel<<<grid, 64, 0, s>>>(a);
  QF_CUDA(cudaGetLastError());
}

void attention_prefill(const AttnArgs& a, cudaStream_t s) {
  const dim3 grid(unsigned((a.n + kQB - 1) / kQB), unsigned(a.heads));
  const size_t smem = size_t(2) * kKT * a.hd * sizeof(float);
  if (a.hd <= 64) prefill_kernel<16><<<grid, 128, smem, s>>>(a);
  else if (a.hd <= 128) prefill_kernel<32><<<grid, 128, smem, s>>>(a);
  else if (a.hd <= 256) prefill_kernel<64><<<grid, 128, smem, s>>>(a);
  else throw Error("cuda: attention head_dim " + std::to_string(a.hd) + " > 256 is not supported");
  QF_CUDA(cudaGetLastError());
}

void init_kernels(int device) {
  init_linear_kernels(device);
  int optin = 0;
  QF_CUDA(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  g_max_smem = std::max(48 * 1024, optin);
  QF_CUDA(cudaFuncSetAttribute(prefill_kernel<16>, cudaFuncAttributeMaxDynamicSharedMemorySize, g_max_smem));
  QF_CUDA(cudaFuncSetAttribute(prefill_kernel<32>, cudaFuncAttributeMaxDynamicSharedMemorySize, g_max_smem));
  QF_CUDA(cudaFuncSetAttribute(prefill_kernel<64>, cudaFuncAttributeMaxDynamicSharedMemorySize, g_max_smem));
}

}  // namespace qforge::cuda
