// backends/cuda/cuda_sampling.cu — see cuda_sampling.cuh. Order: every logit becomes a 64-bit key
// (order-preserving 32-bit image of the float, NaN highest, -0 as +0; then the bitwise-inverted id
// so that lower ids win ties): larger key = ranks first. Greedy (k = 1) is one grid-wide max
// (atomicMax on the key); top-k sorts 4096-key chunks in shared memory (bitonic), keeps each
// chunk's k best, and repeats on the survivors until one chunk is left. Values are read back
// from the (penalised) row by id, so they are bit-exact.
#include <algorithm>
#include <cstring>
#include <string>

#include "backends/cuda/cuda_common.cuh"
#include "backends/cuda/cuda_sampling.cuh"

namespace qforge::cuda {
namespace {

using Key = unsigned long long;  // (rank of the value << 32) | ~id

constexpr int kChunk = 4096;        // keys sorted per block (32 KiB of shared memory)
constexpr int kChunkThreads = 1024;
constexpr int kArgmaxThreads = 256;

__device__ __forceinline__ Key rank_key(float v, int64_t id) {
  uint32_t k;
  if (isnan(v)) {
    k = 0xFFFFFFFFu;
  } else {
    uint32_t b = __float_as_uint(v == 0.f ? 0.f : v);  // -0 ranks as +0 (they compare equal)
    k = (b & 0x80000000u) ? ~b : (b | 0x80000000u);    // -inf -> 0x007FFFFF: every real key is > 0
  }
  return (Key(k) << 32) | Key(~uint32_t(id));
}
__device__ __forceinline__ int32_t key_id(Key key) { return int32_t(~uint32_t(key)); }

__global__ void penalize_kernel(float* logits, const int32_t* ids, int64_t m, float penalty) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < m; i += int64_t(gridDim.x) * blockDim.x) {
    float& s = logits[ids[i]];
    // A NaN stays as it is (the host's NaN / p keeps a quiet NaN's bits; the GPU's would not).
    if (!isnan(s)) s = s < 0.f ? __fmul_rn(s, penalty) : __fdiv_rn(s, penalty);
  }
}

__global__ void argmax_kernel(const float* x, int64_t n, Key* best) {
  Key m = 0;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    m = max(m, rank_key(x[i], i));
  for (int o = 16; o > 0; o >>= 1) m = max(m, __shfl_xor_sync(0xffffffffu, m, o));
  __shared__ Key warp_best[kArgmaxThreads / 32];
  if ((threadIdx.x & 31) == 0) warp_best[threadIdx.x >> 5] = m;
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < kArgmaxThreads / 32; ++w) m = max(m, warp_best[w]);
    atomicMax(best, m);
  }
}

__global__ void emit_one_kernel(const float* logits, const Key* best, float* vals, int32_t* ids) {
  const int32_t id = key_id(*best);
  vals[0] = logits[id];
  ids[0] = id;
}

// One block per chunk of `count` keys (from the float row when kFromRow, else from `in`): sorts
// the chunk descending and writes its k_out best keys to out[block * k_out ..], or, when `vals`
// is set (the last round, one block), the k_out best as (value, id).
template <bool kFromRow>
__global__ void __launch_bounds__(kChunkThreads) chunk_top_k_kernel(const float* logits, const Key* in,
                                                                    int64_t count, int k_out, Key* out,
                                                                    float* vals, int32_t* ids) {
  __shared__ Key s[kChunk];
  const int64_t base = int64_t(blockIdx.x) * kChunk;
  for (int i = threadIdx.x; i < kChunk; i += blockDim.x) {
    const int64_t g = base + i;
    s[i] = g < count ? (kFromRow ? rank_key(logits[g], g) : in[g]) : 0;  // 0 ranks below every real key
  }
  __syncthreads();
  for (int size = 2; size <= kChunk; size <<= 1)
    for (int stride = size >> 1; stride > 0; stride >>= 1) {
      for (int i = threadIdx.x; i < kChunk; i += blockDim.x) {
        const int j = i ^ stride;
        if (j > i) {
          const Key a = s[i], b = s[j];
          if ((i & size) == 0 ? a < b : a > b) s[i] = b, s[j] = a;  // descending overall
        }
      }
      __syncthreads();
    }
  for (int i = threadIdx.x; i < k_out; i += blockDim.x) {
    if (vals) {
      const int32_t id = key_id(s[i]);
      vals[i] = logits[id];
      ids[i] = id;
    } else {
      out[int64_t(blockIdx.x) * k_out + i] = s[i];
    }
  }
}

size_t align256(size_t b) { return (b + 255) & ~size_t(255); }
int64_t chunks(int64_t count) { return (count + kChunk - 1) / kChunk; }

}  // namespace

size_t top_k_scratch_bytes(int64_t n, int k, int64_t m) {
  const int64_t first = chunks(n) * std::min(k, kChunk);  // keys after the first round
  return align256(size_t(m) * 4) + 2 * align256(size_t(k) * 4) + 2 * align256(size_t(first) * 8) + 256;
}

void select_top_k_device(float* logits, int64_t n, const int32_t* penalize, int64_t m, float penalty, int k,
                         void* scratch, void* pinned, cudaStream_t stream) {
  if (k < 1 || k > n || k > kMaxDeviceTopK) throw Error("select_top_k_device: k = " + std::to_string(k) + " unsupported");
  char* p = static_cast<char*>(scratch);
  auto take = [&](size_t bytes) {
    char* q = p;
    p += align256(bytes);
    return q;
  };
  auto* ids_dev = reinterpret_cast<int32_t*>(take(size_t(m) * 4));
  auto* out_vals = reinterpret_cast<float*>(take(size_t(k) * 4));
  auto* out_ids = reinterpret_cast<int32_t*>(take(size_t(k) * 4));
  const int64_t first = chunks(n) * std::min(k, kChunk);
  Key* ping[2] = {reinterpret_cast<Key*>(take(size_t(first) * 8)),
                       reinterpret_cast<Key*>(take(size_t(first) * 8))};
  auto* best = reinterpret_cast<Key*>(take(8));

  if (m > 0) {
    std::memcpy(pinned, penalize, size_t(m) * 4);
    QF_CUDA(cudaMemcpyAsync(ids_dev, pinned, size_t(m) * 4, cudaMemcpyHostToDevice, stream));
    const int blocks = int(std::min<int64_t>((m + 255) / 256, 1024));
    penalize_kernel<<<blocks, 256, 0, stream>>>(logits, ids_dev, m, penalty);
    QF_CUDA(cudaGetLastError());
  }
  if (k == 1) {
    QF_CUDA(cudaMemsetAsync(best, 0, 8, stream));
    const int blocks = int(std::clamp<int64_t>((n + kArgmaxThreads * 8 - 1) / (kArgmaxThreads * 8), 1, 512));
    argmax_kernel<<<blocks, kArgmaxThreads, 0, stream>>>(logits, n, best);
    emit_one_kernel<<<1, 1, 0, stream>>>(logits, best, out_vals, out_ids);
  } else {
    const Key* cur = nullptr;  // null: the keys are still the float row
    int64_t count = n;
    int round = 0;
    while (count > kChunk) {
      const int64_t blocks = chunks(count);
      Key* dst = ping[round++ & 1];
      if (!cur) chunk_top_k_kernel<true><<<unsigned(blocks), kChunkThreads, 0, stream>>>(logits, nullptr, count, k, dst, nullptr, nullptr);
      else chunk_top_k_kernel<false><<<unsigned(blocks), kChunkThreads, 0, stream>>>(logits, cur, count, k, dst, nullptr, nullptr);
      QF_CUDA(cudaGetLastError());
      cur = dst;
      count = blocks * k;  // each chunk keeps its k best (k <= kChunk / 4: the count shrinks)
    }
    if (!cur) chunk_top_k_kernel<true><<<1, kChunkThreads, 0, stream>>>(logits, nullptr, count, k, nullptr, out_vals, out_ids);
    else chunk_top_k_kernel<false><<<1, kChunkThreads, 0, stream>>>(logits, cur, count, k, nullptr, out_vals, out_ids);
  }
  QF_CUDA(cudaGetLastError());
  // out_vals and out_ids are adjacent only up to alignment: two copies into the pinned buffer.
  QF_CUDA(cudaMemcpyAsync(pinned, out_vals, size_t(k) * 4, cudaMemcpyDeviceToHost, stream));
  QF_CUDA(cudaMemcpyAsync(static_cast<char*>(pinned) + size_t(k) * 4, out_ids, size_t(k) * 4, cudaMemcpyDeviceToHost,
                          stream));
  QF_CUDA(cudaStreamSynchronize(stream));
}

}  // namespace qforge::cuda
