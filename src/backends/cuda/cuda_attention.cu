// backends/cuda/cuda_attention.cu — the first step of prefill attention on the GPU: rope applied to
// q/k with k/v written into the f32 caches (one kernel), and kernel initialisation. The prefill
// attention kernels live in cuda_attention_prefill.cu, decode (one token) in cuda_attention_decode.cu.
#include <algorithm>
#include <cmath>

#include "backends/cuda/cuda_attention_prefill.cuh"
#include "backends/cuda/cuda_kernels.cuh"

namespace qforge::cuda {
void init_linear_kernels(int device);

namespace {

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
      const float r0 = rope_lo(x0, x1, c[j], s[j]), r1 = rope_hi(x0, x1, c[j], s[j]);
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

}  // namespace

void rope_and_cache(const AttnArgs& a, cudaStream_t s) {
  dim3 grid(unsigned(a.n), unsigned(a.heads + 2 * a.kv_heads));
  rope_cache_kernel<<<grid, 64, 0, s>>>(a);
  QF_CUDA(cudaGetLastError());
}

void init_kernels(int device) {
  init_linear_kernels(device);
  init_prefill_kernels(device);
}

}  // namespace qforge::cuda
