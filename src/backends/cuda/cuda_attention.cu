// backends/cuda/cuda_attention.cu — attention on the GPU: rope applied to q/k with k/v written into
// the f32 caches (one kernel); decode as flash-decoding (the cache split into 32-key chunks, one
// block per kv-head and chunk serving the whole GQA group, then a combine), grids sized for the
// cache capacity with early exit so a captured graph stays valid as the position advances. The
// prefill kernels live in cuda_attention_prefill.cu.
#include <algorithm>
#include <cmath>

#include "backends/cuda/cuda_attention_prefill.cuh"
#include "backends/cuda/cuda_kernels.cuh"

namespace qforge::cuda {
void init_linear_kernels(int device);

namespace {

constexpr int kChunk = 32;    // keys per decode split

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

// grid (kv_heads, splits), 128 threads. part_o [heads, splits, hd], part_ml [heads, splits, 2].
__global__ void __launch_bounds__(128) decode_split_kernel(AttnArgs a, int splits, float* part_o, float* part_ml) {
  extern __shared__ float smem[];
  const int G = a.heads / a.kv_heads, hd = a.hd, kvd = a.kv_heads * hd;
  float* qs = smem;            // [G, hd]
  float* sc = smem + G * hd;   // [G, kChunk]
  const int kvh = blockIdx.x, sp = blockIdx.y;
  const int pos = cur_pos0(a), npos = pos + 1;
  const int first = a.window > 0 ? max(0, pos - a.window + 1) : 0;
  const int k0 = max(sp * kChunk, first), k1 = min((sp + 1) * kChunk, npos);
  if (k0 >= k1) return;  // the combine reads only the chunks that hold visible keys
  const float scale = rsqrtf(float(hd));
  for (int idx = threadIdx.x; idx < G * hd; idx += blockDim.x)
    qs[idx] = a.q[size_t(kvh * G) * hd + idx] * scale;
  __syncthreads();
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, len = k1 - k0;
  for (int p = k0 + warp; p < k1; p += 4) {
    const float* kr = a.k_cache + size_t(p) * kvd + size_t(kvh) * hd;
    float kreg[8];
#pragma unroll
    for (int j = 0; j < 8; ++j) kreg[j] = lane + 32 * j < hd ? kr[lane + 32 * j] : 0.f;
    for (int g = 0; g < G; ++g) {
      float d = 0.f;
#pragma unroll
      for (int j = 0; j < 8; ++j)
        if (lane + 32 * j < hd) d += qs[g * hd + lane + 32 * j] * kreg[j];
      for (int o = 16; o > 0; o >>= 1) d += __shfl_xor_sync(0xffffffffu, d, o);
      if (lane == 0) sc[g * kChunk + (p - k0)] = d;
    }
  }
  __syncthreads();
  for (int g = warp; g < G; g += 4) {
    float m = -INFINITY;
    for (int j = lane; j < len; j += 32) m = fmaxf(m, sc[g * kChunk + j]);
    for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
    float l = 0.f;
    for (int j = lane; j < len; j += 32) {
      float e = expf(sc[g * kChunk + j] - m);
      sc[g * kChunk + j] = e;
      l += e;
    }
    for (int o = 16; o > 0; o >>= 1) l += __shfl_xor_sync(0xffffffffu, l, o);
    if (lane == 0) {
      const size_t pi = size_t(kvh * G + g) * splits + sp;
      part_ml[2 * pi] = m;
      part_ml[2 * pi + 1] = l;
    }
  }
  __syncthreads();
  for (int idx = threadIdx.x; idx < G * hd; idx += blockDim.x) {
    const int g = idx / hd, d = idx % hd;
    const float* vc = a.v_cache + size_t(k0) * kvd + size_t(kvh) * hd + d;
    float o0 = 0.f, o1 = 0.f, o2 = 0.f, o3 = 0.f;  // independent sums: four V loads in flight
    int j = 0;
    for (; j + 4 <= len; j += 4) {
      o0 += sc[g * kChunk + j] * vc[size_t(j) * kvd];
      o1 += sc[g * kChunk + j + 1] * vc[size_t(j + 1) * kvd];
      o2 += sc[g * kChunk + j + 2] * vc[size_t(j + 2) * kvd];
      o3 += sc[g * kChunk + j + 3] * vc[size_t(j + 3) * kvd];
    }
    for (; j < len; ++j) o0 += sc[g * kChunk + j] * vc[size_t(j) * kvd];
    const float o = (o0 + o1) + (o2 + o3);
    part_o[(size_t(kvh * G + g) * splits + sp) * hd + d] = o;
  }
}

// grid heads, 128 threads.
__global__ void decode_combine_kernel(AttnArgs a, int splits, const float* part_o, const float* part_ml) {
  const int h = blockIdx.x;
  const int pos = cur_pos0(a), npos = pos + 1;
  const int first = a.window > 0 ? max(0, pos - a.window + 1) : 0;
  const int s0 = first / kChunk, s1 = (npos - 1) / kChunk;
  float M = -INFINITY;
  for (int s = s0; s <= s1; ++s) M = fmaxf(M, part_ml[2 * (size_t(h) * splits + s)]);
  float L = 0.f;
  for (int s = s0; s <= s1; ++s) {
    const size_t pi = size_t(h) * splits + s;
    L += part_ml[2 * pi + 1] * expf(part_ml[2 * pi] - M);
  }
  for (int d = threadIdx.x; d < a.hd; d += blockDim.x) {
    float o = 0.f;
    for (int s = s0; s <= s1; ++s) {
      const size_t pi = size_t(h) * splits + s;
      o += part_o[pi * a.hd + d] * expf(part_ml[2 * pi] - M);
    }
    a.out[size_t(h) * a.hd + d] = o / L;
  }
}

int g_max_smem = 48 * 1024;

}  // namespace

int64_t attention_scratch_floats(int heads, int hd, int capacity) {
  const int64_t splits = (capacity + kChunk - 1) / kChunk;
  return int64_t(heads) * splits * (hd + 2);
}

void rope_and_cache(const AttnArgs& a, cudaStream_t s) {
  dim3 grid(unsigned(a.n), unsigned(a.heads + 2 * a.kv_heads));
  rope_cache_kernel<<<grid, 64, 0, s>>>(a);
  QF_CUDA(cudaGetLastError());
}

void attention_decode(const AttnArgs& a, float* scratch, cudaStream_t s) {
  if (a.hd > 256) throw Error("cuda: attention head_dim " + std::to_string(a.hd) + " > 256 is not supported");
  const int splits = (a.capacity + kChunk - 1) / kChunk;
  const int G = a.heads / a.kv_heads;
  const size_t smem = size_t(G) * (a.hd + kChunk) * sizeof(float);
  if (smem > size_t(g_max_smem)) throw Error("cuda: attention group of " + std::to_string(G) + " heads is too large");
  float* part_o = scratch;
  float* part_ml = scratch + size_t(a.heads) * splits * a.hd;
  decode_split_kernel<<<dim3(unsigned(a.kv_heads), unsigned(splits)), 128, smem, s>>>(a, splits, part_o, part_ml);
  QF_CUDA(cudaGetLastError());
  decode_combine_kernel<<<unsigned(a.heads), 128, 0, s>>>(a, splits, part_o, part_ml);
  QF_CUDA(cudaGetLastError());
}

void init_kernels(int device) {
  init_linear_kernels(device);
  int optin = 0;
  QF_CUDA(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  g_max_smem = std::max(48 * 1024, optin);
  QF_CUDA(cudaFuncSetAttribute(decode_split_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, g_max_smem));
  init_prefill_kernels(device);  // cuda_attention_prefill.cu
}

}  // namespace qforge::cuda
