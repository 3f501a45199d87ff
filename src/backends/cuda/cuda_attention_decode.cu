// backends/cuda/cuda_attention_decode.cu — decode attention (one query token) as ONE kernel over
// (kv head, split) blocks: the first K/V tile of the block's key range is staged before the
// programmatic-dependent-launch wait, every block ropes its GQA group's queries, the block whose
// range holds the new position ropes k and writes k/v into the f32 caches, each warp runs online
// softmax for its query heads (lane = key, shuffles) and P.V by (key slice, float4 column), and the
// last block of each kv head to finish (atomic counter) combines the partial results. Graph-safe:
// the split count is fixed at launch and each block's key range comes from the device position.
#include <algorithm>
#include <cmath>

#include "backends/cuda/cuda_kernels.cuh"

namespace qforge::cuda {
namespace {

constexpr int kKT = 32;        // keys per shared-memory tile (one key per lane when scoring)
constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;
// float4 loads of K and of V a thread has in flight when staging a tile: a whole 32-key tile of 128-dim
// heads in one memory round trip (the kernel is a chain of such round trips, not a stream of bytes).
constexpr int kStageUnroll = 4;
int g_attn_smem_limit = 48 * 1024;

__device__ __forceinline__ int cur_pos(const AttnArgs& a) { return a.pos_dev ? *a.pos_dev : a.pos0; }

// Shared-memory layout, in floats (every part 16-byte aligned).
struct DecodeSmem {
  int qs, ks, vs, acc, stat, total;
  __host__ __device__ DecodeSmem(int G, int hd) {
    const int kst = hd + 4;  // padded K row: conflict-free 16-byte reads when each lane reads its own key
    qs = 0;
    ks = qs + G * hd;
    vs = ks + kKT * kst;
    acc = vs + kKT * hd;
    stat = acc + G * hd;     // [G] running max, [G] running sum; then [G * splits] combine weights
    total = stat + 2 * G + ((G * kKT + 3) / 4) * 4;
  }
};

// grid (kv_heads, splits), kThreads threads. part_o [heads, splits, hd], part_ml [heads, splits, 2],
// counters [kv_heads] (zero between launches: the combining block resets its counter). The kernel
// reads q/k/v only after pdl_wait and writes nothing before it.
// Work split: the block stages a tile of up to 32 keys (K padded, V) once; warp w owns the query
// heads g = w, w + 8, ... of the group: lane j scores key j against q_g, the softmax statistics
// are warp shuffles, and the lane owning output dims d, d + 32, ... accumulates p_j * V[j][d] —
// one barrier per tile, no block-wide reductions.
__global__ void __launch_bounds__(kThreads, 2) decode_attention_kernel(AttnArgs a, int splits, float* part_o,
                                                                    float* part_ml, unsigned* counters) {
  extern __shared__ float4 smem4[];
  float* sm = reinterpret_cast<float*>(smem4);
  const int G = a.heads / a.kv_heads, hd = a.hd, half = hd / 2, kvd = a.kv_heads * hd, kst = hd + 4;
  const DecodeSmem L(G, hd);
  float* qs = sm + L.qs;
  float* ks = sm + L.ks;
  float* vs = sm + L.vs;
  float* acc = sm + L.acc;
  float* m_run = sm + L.stat;
  float* l_run = m_run + G;
  float* wts = l_run + G;
  __shared__ bool last_block;
  const int kvh = blockIdx.x, sp = blockIdx.y, tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;

  // The position (copied before the step's first kernel) and the cache rows before it (written by
  // earlier steps) do not depend on the previous kernel: the first K/V tile is staged before the
  // programmatic-dependent-launch wait, overlapping the q/k/v GEMV's tail. The new row comes later.
  const int pos = cur_pos(a), npos = pos + 1;
  const int first = a.window > 0 ? max(0, pos - a.window + 1) : 0;
  const int span = npos - first, chunk = (span + splits - 1) / splits;
  const int k0 = first + sp * chunk, k1 = min(k0 + chunk, npos);
  const float* cs = a.rope_cos + size_t(pos) * half;
  const float* sn = a.rope_sin + size_t(pos) * half;
  const float scale = rsqrtf(float(hd));
  const float* qg = a.q + size_t(kvh) * G * hd;
  const bool vec = (hd & 3) == 0;
  // P.V layout: float4 columns (hd / 4) by key slices, when hd / 4 is a power of two or a multiple
  // of 32 (vec: every DecodeSmem part, acc included, is then 16-byte aligned).
  const int hd4 = hd >> 2, ncol = hd4 < 32 ? hd4 : 32, kslices = 32 / ncol;
  const bool ncol_pow2 = vec && (ncol & (ncol - 1)) == 0 && hd4 % ncol == 0;
  auto stage_tile = [&](int t0, int len) {  // cache rows [t0, t0 + len) except pos -> ks / vs
    if (vec) {
      const int hq = hd >> 2, nq = len * hq;
      for (int i0 = tid; i0 < nq; i0 += kStageUnroll * kThreads) {
        float4 kv[kStageUnroll], vv[kStageUnroll];
#pragma unroll
        for (int u = 0; u < kStageUnroll; ++u) {
          const int i = i0 + u * kThreads, r = i / hq, c = (i % hq) * 4;
          if (i < nq && t0 + r != pos) {
            const size_t off = size_t(t0 + r) * kvd + size_t(kvh) * hd + c;
            kv[u] = __ldg(reinterpret_cast<const float4*>(a.k_cache + off));
            vv[u] = __ldg(reinterpret_cast<const float4*>(a.v_cache + off));
          }
        }
#pragma unroll
        for (int u = 0; u < kStageUnroll; ++u) {
          const int i = i0 + u * kThreads, r = i / hq, c = (i % hq) * 4;
          if (i < nq && t0 + r != pos) {
            *reinterpret_cast<float4*>(ks + r * kst + c) = kv[u];
            *reinterpret_cast<float4*>(vs + r * hd + c) = vv[u];
          }
        }
      }
    } else {
      for (int i = tid; i < len * hd; i += kThreads) {
        const int r = i / hd, c = i % hd, p = t0 + r;
        if (p == pos) continue;
        const size_t off = size_t(p) * kvd + size_t(kvh) * hd + c;
        ks[r * kst + c] = a.k_cache[off];
        vs[r * hd + c] = a.v_cache[off];
      }
    }
  };
  if (k0 < k1) stage_tile(k0, min(kKT, k1 - k0));
  pdl_wait();  // q/k/v come from the previous kernel
  pdl_launch_dependents();

  if (k0 < k1) {
    for (int i = tid; i < G * half; i += kThreads) {
      const int g = i / half, j = i % half;
      const float x0 = qg[g * hd + j], x1 = qg[g * hd + j + half];
      qs[g * hd + j] = rope_lo(x0, x1, cs[j], sn[j]) * scale;
      qs[g * hd + j + half] = rope_hi(x0, x1, cs[j], sn[j]) * scale;
    }
    for (int i = tid; i < G * hd; i += kThreads) acc[i] = 0.f;
    for (int g = tid; g < G; g += kThreads) m_run[g] = -INFINITY, l_run[g] = 0.f;
    for (int t0 = k0; t0 < k1; t0 += kKT) {
      const int len = min(kKT, k1 - t0);
      if (t0 > k0) {
        __syncthreads();  // every warp is done with the previous tile
        stage_tile(t0, len);
      }
      if (pos >= t0 && pos < t0 + len) {
        const int r = pos - t0;
        float* kn = a.k + size_t(kvh) * hd;
        const float* vn = a.v + size_t(kvh) * hd;
        float* kc = a.k_cache + size_t(pos) * kvd + size_t(kvh) * hd;
        float* vc = a.v_cache + size_t(pos) * kvd + size_t(kvh) * hd;
        for (int j = tid; j < half; j += kThreads) {
          const float x0 = kn[j], x1 = kn[j + half];
          const float r0 = rope_lo(x0, x1, cs[j], sn[j]), r1 = rope_hi(x0, x1, cs[j], sn[j]);
          ks[r * kst + j] = r0;
          ks[r * kst + j + half] = r1;
          kc[j] = r0;
          kc[j + half] = r1;
        }
        for (int j = tid; j < hd; j += kThreads) {
          const float v = vn[j];
          vs[r * hd + j] = v;
          vc[j] = v;
        }
        __syncthreads();  // every thread has read its part of k before it is overwritten in place
        for (int j = tid; j < hd; j += kThreads) kn[j] = ks[r * kst + j];
      }
      __syncthreads();
      for (int g = warp; g < G; g += kWarps) {
        // Score of key `lane` (q already scaled).
        float s = -INFINITY;
        if (lane < len) {
          const float* qr = qs + g * hd;
          const float* kr = ks + lane * kst;
          float d0 = 0.f, d1 = 0.f;
          if (vec) {
            for (int c = 0; c < hd; c += 8) {
              const float4 q0 = *reinterpret_cast<const float4*>(qr + c), kk0 = *reinterpret_cast<const float4*>(kr + c);
              d0 += q0.x * kk0.x + q0.y * kk0.y + q0.z * kk0.z + q0.w * kk0.w;
              if (c + 4 < hd) {
                const float4 q1 = *reinterpret_cast<const float4*>(qr + c + 4), kk1 = *reinterpret_cast<const float4*>(kr + c + 4);
                d1 += q1.x * kk1.x + q1.y * kk1.y + q1.z * kk1.z + q1.w * kk1.w;
              }
            }
          } else {
            for (int c = 0; c < hd; ++c) d0 += qr[c] * kr[c];
          }
          s = d0 + d1;
        }
        float mt = s;
        for (int o = 16; o > 0; o >>= 1) mt = fmaxf(mt, __shfl_xor_sync(0xffffffffu, mt, o));
        const float m_old = m_run[g], m_new = fmaxf(m_old, mt);
        const float p = lane < len ? expf(s - m_new) : 0.f;
        float se = p;
        for (int o = 16; o > 0; o >>= 1) se += __shfl_xor_sync(0xffffffffu, se, o);
        const float corr = expf(m_old - m_new);  // 0 on the first tile (m_old = -inf)
        __syncwarp();
        if (lane == 0) {
          m_run[g] = m_new;
          l_run[g] = l_run[g] * corr + se;
        }
        if (ncol_pow2) {
          // p through this warp's row of shared memory; lane = (key slice, float4 column): each lane
          // sums its slice of the keys for 4 dims, then the slices meet by shuffles.
          float* pw = wts + g * kKT;
          pw[lane] = p;
          __syncwarp();
          const int slice = lane / ncol, col = lane % ncol;
          for (int c0 = 0; c0 < hd4; c0 += ncol) {  // hd4 > 32: several column blocks
            float4 o = make_float4(0.f, 0.f, 0.f, 0.f);
            for (int j = slice; j < len; j += kslices) {
              const float pj = pw[j];
              const float4 v4 = *reinterpret_cast<const float4*>(vs + j * hd + 4 * (c0 + col));
              o.x += pj * v4.x; o.y += pj * v4.y; o.z += pj * v4.z; o.w += pj * v4.w;
            }
            for (int off = ncol; off < 32; off <<= 1) {
              o.x += __shfl_xor_sync(0xffffffffu, o.x, off);
              o.y += __shfl_xor_sync(0xffffffffu, o.y, off);
              o.z += __shfl_xor_sync(0xffffffffu, o.z, off);
              o.w += __shfl_xor_sync(0xffffffffu, o.w, off);
            }
            if (slice == 0) {
              float4* a4 = reinterpret_cast<float4*>(acc + g * hd + 4 * (c0 + col));
              const float4 prev = *a4;
              *a4 = make_float4(prev.x * corr + o.x, prev.y * corr + o.y, prev.z * corr + o.z, prev.w * corr + o.w);
            }
          }
          __syncwarp();  // pw is rewritten by the next tile
        } else {
          for (int d0 = 0; d0 < hd; d0 += 32) {  // every lane runs every iteration (shuffles)
            const int d = d0 + lane;
            const bool own = d < hd;
            const float* vcol = vs + (own ? d : 0);
            float o0 = 0.f, o1 = 0.f;
            int j = 0;
            for (; j + 2 <= len; j += 2) {
              const float p0 = __shfl_sync(0xffffffffu, p, j), p1 = __shfl_sync(0xffffffffu, p, j + 1);
              o0 += p0 * vcol[j * hd];
              o1 += p1 * vcol[(j + 1) * hd];
            }
            if (j < len) o0 += __shfl_sync(0xffffffffu, p, j) * vcol[j * hd];
            if (own) acc[g * hd + d] = acc[g * hd + d] * corr + (o0 + o1);
          }
        }
      }
    }
    __syncwarp();
    // Each warp writes the heads it owns (no barrier needed: same warp wrote them).
    for (int g = warp; g < G; g += kWarps) {
      for (int d = lane; d < hd; d += 32) part_o[(size_t(kvh * G + g) * splits + sp) * hd + d] = acc[g * hd + d];
      if (lane == 0) {
        const size_t pi = size_t(kvh * G + g) * splits + sp;
        part_ml[2 * pi] = m_run[g];
        part_ml[2 * pi + 1] = l_run[g];
      }
    }
  } else {
    for (int g = tid; g < G; g += kThreads) {
      const size_t pi = size_t(kvh * G + g) * splits + sp;
      part_ml[2 * pi] = -INFINITY;
      part_ml[2 * pi + 1] = 0.f;
    }
  }
  // Last block of this kv head combines (threadFenceReduction pattern).
  __threadfence();
  __syncthreads();
  if (tid == 0) {
    const unsigned done = atomicAdd(counters + kvh, 1u);
    last_block = done == unsigned(splits - 1);
  }
  __syncthreads();
  if (!last_block) return;
  __threadfence();
  // Each warp combines the heads it owns: lane s holds split s's (m, l) (splits <= kKT = 32: one round
  // trip), then every lane sums its float4 columns over the splits with 8 loads in flight (the combine
  // had been ~3 dependent L2 round trips per split pair and column block: most of the kernel's tail).
  for (int g = warp; g < G; g += kWarps) {
    float* w = wts + g * splits;  // this head's combine weights (splits <= kKT)
    const size_t hb = size_t(kvh * G + g) * splits;
    const float m = lane < splits ? __ldcg(part_ml + 2 * (hb + lane)) : -INFINITY;
    const float l = lane < splits ? __ldcg(part_ml + 2 * (hb + lane) + 1) : 0.f;
    float M = m;
    for (int o = 16; o > 0; o >>= 1) M = fmaxf(M, __shfl_xor_sync(0xffffffffu, M, o));
    const float e = m == -INFINITY ? 0.f : l * expf(m - M);
    float Ls = e;
    for (int o = 16; o > 0; o >>= 1) Ls += __shfl_xor_sync(0xffffffffu, Ls, o);
    if (lane < splits) w[lane] = m == -INFINITY ? 0.f : expf(m - M) / Ls;
    __syncwarp();
    // Empty splits wrote no part_o (their weight is 0): select, never multiply, their stale values.
    auto wsum = [&](float acc, int s, float v) { return w[s] != 0.f ? fmaf(w[s], v, acc) : acc; };
    const float* po = part_o + hb * hd;
    float* out = a.out + size_t(kvh * G + g) * hd;
    if (vec) {
      for (int c = lane; c < hd4; c += 32) {
        float4 o = make_float4(0.f, 0.f, 0.f, 0.f);
        for (int s0 = 0; s0 < splits; s0 += 8) {
          float4 v[8];
#pragma unroll
          for (int j = 0; j < 8; ++j)
            if (s0 + j < splits) v[j] = __ldcg(reinterpret_cast<const float4*>(po + size_t(s0 + j) * hd) + c);
#pragma unroll
          for (int j = 0; j < 8; ++j)
            if (s0 + j < splits) {
              o.x = wsum(o.x, s0 + j, v[j].x);
              o.y = wsum(o.y, s0 + j, v[j].y);
              o.z = wsum(o.z, s0 + j, v[j].z);
              o.w = wsum(o.w, s0 + j, v[j].w);
            }
        }
        reinterpret_cast<float4*>(out)[c] = o;
      }
    } else {
      for (int d = lane; d < hd; d += 32) {
        float o = 0.f;
        for (int s = 0; s < splits; ++s) o = wsum(o, s, __ldcg(po + size_t(s) * hd + d));
        out[d] = o;
      }
    }
  }
  // The queries roped in place (the contract of attention()): every block has read q by now.
  for (int i = tid; i < G * half; i += kThreads) {
    const int g = i / half, j = i % half;
    float* qr = a.q + (size_t(kvh) * G + g) * hd;
    const float x0 = qr[j], x1 = qr[j + half];
    qr[j] = rope_lo(x0, x1, cs[j], sn[j]);
    qr[j + half] = rope_hi(x0, x1, cs[j], sn[j]);
  }
  if (tid == 0) counters[kvh] = 0u;
}

constexpr int kMaxCounters = 256;  // kv heads; the counters sit first in the scratch (fixed place)

// Blocks per kv head: one per 32-key tile of a full cache, so each block has one tile (staged before the
// PDL wait: no memory round trip after it), at most kKT (the combine keeps one weight per split and head
// in shared memory). The grid's size comes from the capacity, not from the SM count.
// (32 splits of 16 keys instead of 17 of 32 measured no faster at 512 tokens, when 17 blocks of 32 keys
// were one tile each too: the block's chain is latency, not keys.)
int decode_splits(int capacity) { return std::max(1, std::min(kKT, (capacity + kKT - 1) / kKT)); }

}  // namespace

int64_t attention_scratch_floats(int heads, int kv_heads, int hd, int capacity) {
  const int64_t splits = decode_splits(capacity);
  return kMaxCounters + int64_t(heads) * splits * (hd + 2);
}

void attention_decode(const AttnArgs& a, float* scratch, cudaStream_t s) {
  if (a.n != 1) throw Error("cuda: attention_decode takes one token");
  if (a.hd > 256 || a.hd % 2 != 0) throw Error("cuda: attention head_dim " + std::to_string(a.hd) + " is not supported");
  const int splits = decode_splits(a.capacity);
  const int G = a.heads / a.kv_heads;
  const DecodeSmem L(G, a.hd);
  if (a.kv_heads > kMaxCounters) throw Error("cuda: decode attention supports at most 256 kv heads");
  const size_t smem = size_t(L.total) * sizeof(float);
  if (smem > size_t(g_attn_smem_limit))
    throw Error("cuda: attention group of " + std::to_string(G) + " heads with head_dim " + std::to_string(a.hd) +
                " does not fit in shared memory");
  unsigned* counters = reinterpret_cast<unsigned*>(scratch);
  float* part_o = scratch + kMaxCounters;
  float* part_ml = part_o + size_t(a.heads) * splits * a.hd;
  launch_pdl(decode_attention_kernel, dim3(unsigned(a.kv_heads), unsigned(splits)), dim3(kThreads), smem, s, a, splits,
             part_o, part_ml, counters);
}

void init_attention_decode(int device) {
  int optin = 0;
  QF_CUDA(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  g_attn_smem_limit = std::max(48 * 1024, optin - 1024);
  QF_CUDA(cudaFuncSetAttribute(decode_attention_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, g_attn_smem_limit));
}

}  // namespace qforge::cuda
