// backends/cuda/cuda_attention_prefill.cu — prefill attention (n > 1 new tokens over the KV cache,
// after rope_and_cache): the exact f32 CUDA-core tiled kernel (f32 models, short prompts, head dims
// the tensor cores do not take) and a flash-attention-2 style tensor-core kernel: mma.sync m16n8k16
// bf16 with f32 accumulators, online softmax in f32, K/V tiles read by cp.async from a bf16 shadow of
// the f32 cache (one conversion pass per call), causal + sliding-window masks, GQA, pos0 > 0.
#include <algorithm>
#include <cmath>
#include <memory>
#include <string>

#include "backends/cuda/cuda_attention_prefill.cuh"
#include "backends/cuda/cuda_prefill_api.h"

namespace qforge::cuda {
namespace {

constexpr int kQB = 32;  // f32 kernel: queries per block (4 threads each)
constexpr int kKT = 32;  // f32 kernel: keys per tile
constexpr int kTcRows = 64;      // tensor-core kernel: query rows per block (4 warps x 16)
constexpr int kTcThreads = 128;

__device__ __forceinline__ int cur_pos0(const AttnArgs& a) { return a.pos_dev ? *a.pos_dev : a.pos0; }

// ---------------------------------------------------------------------------------------------
// f32 kernel. grid (ceil(n/32), heads), 128 threads: 4 threads per query, each holding dims
// sub, sub+4, ...
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

// ---------------------------------------------------------------------------------------------
// Tensor-core kernel helpers (PTX: mma.sync / ldmatrix / cp.async, sm_80+).

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);  // .x (lo) in the low half
  return *reinterpret_cast<const uint32_t*>(&v);
}
constexpr uint32_t kBf16OnesPair = 0x3F803F80u;  // two bf16 1.0
// 2^x by the SFU (ex2.approx.ftz: ~2 ulp; 2^-inf = 0). Its inputs here are <= 0 and its outputs are
// rounded to bf16 next, so the flush of results below 2^-126 and the approximation do not show.
__device__ __forceinline__ float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}
// c (16x8 f32) += a (16x16 bf16, row) * b (16x8 bf16, col).
__device__ __forceinline__ void mma_bf16(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
__device__ __forceinline__ void ldmatrix_x4(uint32_t r[4], const void* p) {
  const uint32_t s = uint32_t(__cvta_generic_to_shared(p));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(s));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t r[4], const void* p) {
  const uint32_t s = uint32_t(__cvta_generic_to_shared(p));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(s));
}
// 16 bytes global -> shared, zero-filled when !valid (nothing is read then).
__device__ __forceinline__ void cp_async16(void* dst, const void* src, bool valid) {
  const uint32_t s = uint32_t(__cvta_generic_to_shared(dst));
  const int n = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(src), "r"(n));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

// bf16 shadow of cache rows [r0, r1): dst[p*kvd + c] = bf16(src[p*kvd + c]) for K and V (kvd % 4 == 0).
__global__ void shadow_kv_kernel(const float* kc, const float* vc, int64_t e0, int64_t e1, __nv_bfloat16* kb,
                                 __nv_bfloat16* vb) {
  for (int64_t i = e0 / 4 + blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < e1 / 4;
       i += int64_t(gridDim.x) * blockDim.x) {
    const float4 k = reinterpret_cast<const float4*>(kc)[i];
    const float4 v = reinterpret_cast<const float4*>(vc)[i];
    reinterpret_cast<uint2*>(kb)[i] = make_uint2(pack_bf16(k.x, k.y), pack_bf16(k.z, k.w));
    reinterpret_cast<uint2*>(vb)[i] = make_uint2(pack_bf16(v.x, v.y), pack_bf16(v.z, v.w));
  }
}

// The fused prefill's K/V step, one block per new token (pos = pos0 + t): K rotated (RoPE, pairs (j,
// j + hd/2)) and V written to rows pos of the f32 caches and of their bf16 shadows (q is rotated by the
// attention kernel on load). hd % 4 == 0.
__global__ void rope_kv_kernel(AttnArgs a, __nv_bfloat16* kb, __nv_bfloat16* vb) {
  const int t = blockIdx.x, hd = a.hd, half = hd / 2, hp = half / 2, kvd = a.kv_heads * hd;
  const size_t pos = size_t(a.pos0 + t);
  const float* cs = a.rope_cos + pos * half;
  const float* sn = a.rope_sin + pos * half;
  auto rotate = [&](const float* src, float* dst, __nv_bfloat16* shadow, int j) {  // dims j, j+1 and j+half, +1
    const float2 x0 = *reinterpret_cast<const float2*>(src + j), x1 = *reinterpret_cast<const float2*>(src + j + half);
    const float2 c = *reinterpret_cast<const float2*>(cs + j), s = *reinterpret_cast<const float2*>(sn + j);
    const float2 r0 = make_float2(rope_lo(x0.x, x1.x, c.x, s.x), rope_lo(x0.y, x1.y, c.y, s.y));
    const float2 r1 = make_float2(rope_hi(x0.x, x1.x, c.x, s.x), rope_hi(x0.y, x1.y, c.y, s.y));
    *reinterpret_cast<float2*>(dst + j) = r0;
    *reinterpret_cast<float2*>(dst + j + half) = r1;
    *reinterpret_cast<uint32_t*>(shadow + j) = pack_bf16(r0.x, r0.y);
    *reinterpret_cast<uint32_t*>(shadow + j + half) = pack_bf16(r1.x, r1.y);
  };
  for (int i = threadIdx.x; i < a.kv_heads * hp; i += blockDim.x) {
    const int h = i / hp, j = 2 * (i - h * hp);
    const size_t c = pos * kvd + size_t(h) * hd;
    rotate(a.k + (size_t(t) * a.kv_heads + h) * hd, a.k_cache + c, kb + c, j);
  }
  for (int i = threadIdx.x; i < kvd / 4; i += blockDim.x) {
    const float4 v = reinterpret_cast<const float4*>(a.v + size_t(t) * kvd)[i];
    reinterpret_cast<float4*>(a.v_cache + pos * kvd)[i] = v;
    reinterpret_cast<uint2*>(vb + pos * kvd)[i] = make_uint2(pack_bf16(v.x, v.y), pack_bf16(v.z, v.w));
  }
}

// grid (ceil(n/64), heads), 128 threads (4 warps x 16 query rows). HD: head_dim rounded up to
// 64/128/256 (register/shared tiles); the runtime hd (a multiple of 16) bounds every loop over dims.
// Thread roles follow the m16n8k16 fragment layout: g = lane/4 owns rows g and g+8 of the warp's 16,
// t = lane%4 owns columns 2t, 2t+1 of every 8-wide tile.
// ROPE_Q: q is not rotated yet; each thread rotates its fragment's dims on load, reading the partner
// dims (d +- hd/2) from global as well (q is read once per block, so the extra reads are cheap).
template <int HD, int BN, bool ROPE_Q>
__global__ void __launch_bounds__(kTcThreads) prefill_tc_kernel(AttnArgs a, const __nv_bfloat16* kb,
                                                                const __nv_bfloat16* vb) {
  constexpr int LD = HD + 8;  // shared row stride in bf16: 16 extra bytes make ldmatrix conflict-free
  constexpr int KS = HD / 16, NT = BN / 8;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  __nv_bfloat16* ks = reinterpret_cast<__nv_bfloat16*>(smem_raw);  // [2][BN][LD]
  __nv_bfloat16* vs = ks + 2 * BN * LD;                              // [2][BN][LD]
  const int hd = a.hd, G = a.heads / a.kv_heads, kvd = a.kv_heads * hd;
  const int n_qt = (a.n + kTcRows - 1) / kTcRows;
  const int qt = n_qt - 1 - int(blockIdx.x);  // the longest (last) query tiles start first
  const int h = blockIdx.y, kvh = h / G;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t4 = lane & 3;
  const int pos0 = a.pos0, q0 = qt * kTcRows, q_last = min(a.n, q0 + kTcRows) - 1;
  const int kend = pos0 + q_last + 1;
  const int kbeg = a.window > 0 ? max(0, pos0 + q0 - a.window + 1) : 0;
  const int r0 = q0 + warp * 16 + g, r1 = r0 + 8;  // this thread's two query rows
  const int p0 = pos0 + r0, p1 = pos0 + r1;
  const float qscale = rsqrtf(float(hd)) * 1.4426950408889634f;  // softmax in base 2

  // Q fragments straight from global f32 (rotated when ROPE_Q, scaled, rounded to bf16).
  auto load_q = [&](int r, int d) -> float2 {  // dims d, d+1 of query row r (d even)
    if (r >= a.n) return make_float2(0.f, 0.f);
    const float* qr = a.q + (size_t(r) * a.heads + h) * hd;
    float2 x = *reinterpret_cast<const float2*>(qr + d);
    if constexpr (ROPE_Q) {
      const int half = hd >> 1;
      const bool lo = d < half;
      const int j = lo ? d : d - half;
      const float2 y = *reinterpret_cast<const float2*>(qr + (lo ? d + half : j));
      const size_t rp = size_t(pos0 + r) * half + j;
      const float2 c = *reinterpret_cast<const float2*>(a.rope_cos + rp), s = *reinterpret_cast<const float2*>(a.rope_sin + rp);
      // lo: x is dim j and y dim j + half; otherwise the reverse.
      x = lo ? make_float2(rope_lo(x.x, y.x, c.x, s.x), rope_lo(x.y, y.y, c.y, s.y))
             : make_float2(rope_hi(y.x, x.x, c.x, s.x), rope_hi(y.y, x.y, c.y, s.y));
    }
    return x;
  };
  uint32_t qf[KS][4];
#pragma unroll
  for (int kk = 0; kk < KS; ++kk) {
    float2 x00 = make_float2(0.f, 0.f), x10 = x00, x01 = x00, x11 = x00;
    if (kk * 16 < hd) {
      const int d = kk * 16 + 2 * t4;
      x00 = load_q(r0, d);
      x01 = load_q(r0, d + 8);
      x10 = load_q(r1, d);
      x11 = load_q(r1, d + 8);
    }
    qf[kk][0] = pack_bf16(x00.x * qscale, x00.y * qscale);
    qf[kk][1] = pack_bf16(x10.x * qscale, x10.y * qscale);
    qf[kk][2] = pack_bf16(x01.x * qscale, x01.y * qscale);
    qf[kk][3] = pack_bf16(x11.x * qscale, x11.y * qscale);
  }

  float o[HD / 8][4];
#pragma unroll
  for (int j = 0; j < HD / 8; ++j) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.f;
  float m0 = -INFINITY, m1 = -INFINITY;
  // Row sums of the rounded P, accumulated by the tensor cores (P times a ones matrix): lsum[0] is row
  // r0's sum, lsum[2] row r1's (every column of the 16x8 result holds the same sums).
  float lsum[4] = {0.f, 0.f, 0.f, 0.f};

  // K/V tile loads: thread = (16-byte chunk lc of a row, rows lr, lr + RPP, ...); fixed per thread, so no
  // index arithmetic per tile beyond the row offset. Chunks past the runtime hd are never read.
  constexpr int CH = HD / 8, RPP = kTcThreads / CH;
  static_assert(BN % RPP == 0, "every thread loads the same number of rows");
  const int lc = threadIdx.x % CH, lr = threadIdx.x / CH;
  const bool lc_in = lc * 8 < hd;
  const size_t src_col = size_t(kvh) * hd + size_t(lc) * 8;
  auto load_tile = [&](int kt, int st) {
    if (lc_in) {
#pragma unroll
      for (int r = lr; r < BN; r += RPP) {
        const int p = kt + r;
        const bool in = p < kend;
        const size_t off = size_t(in ? p : 0) * kvd + src_col;
        cp_async16(ks + (st * BN + r) * LD + lc * 8, kb + off, in);
        cp_async16(vs + (st * BN + r) * LD + lc * 8, vb + off, in);
      }
    }
    cp_async_commit();
  };

  const int ntiles = (kend - kbeg + BN - 1) / BN;
  load_tile(kbeg, 0);
  for (int it = 0; it < ntiles; ++it) {
    const int st = it & 1, kt = kbeg + it * BN;
    if (it + 1 < ntiles) {
      load_tile(kt + BN, st ^ 1);
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const __nv_bfloat16* kt_s = ks + st * BN * LD;
    const __nv_bfloat16* vt_s = vs + st * BN * LD;

    // S = Q K^T (log2 units).
    float s[NT][4];
#pragma unroll
    for (int j = 0; j < NT; ++j) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < KS; ++kk) {
      if (kk * 16 >= hd) break;
#pragma unroll
      for (int j2 = 0; j2 < NT / 2; ++j2) {
        uint32_t b[4];
        const int mi = lane >> 3, key = j2 * 16 + (lane & 7) + (mi >> 1) * 8, dim = kk * 16 + (mi & 1) * 8;
        ldmatrix_x4(b, kt_s + key * LD + dim);
        mma_bf16(s[2 * j2], qf[kk], b[0], b[1]);
        mma_bf16(s[2 * j2 + 1], qf[kk], b[2], b[3]);
      }
    }
    // Mask only the tiles that cross the diagonal, the window edge or the end.
    const bool full = kt + BN <= kend && kt + BN - 1 <= pos0 + q0 &&
                      (a.window <= 0 || kt >= pos0 + q_last - a.window + 1);
    if (!full) {
      const int f0 = a.window > 0 ? p0 - a.window + 1 : 0, f1 = a.window > 0 ? p1 - a.window + 1 : 0;
#pragma unroll
      for (int j = 0; j < NT; ++j)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int p = kt + j * 8 + 2 * t4 + e;
          if (p >= kend || p > p0 || p < f0) s[j][e] = -INFINITY;
          if (p >= kend || p > p1 || p < f1) s[j][2 + e] = -INFINITY;
        }
    }
    // Online softmax (rows r0: elements 0,1; r1: elements 2,3; a row spans the 4 lanes of a quad).
    float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
    for (int j = 0; j < NT; ++j) {
      mx0 = fmaxf(mx0, fmaxf(s[j][0], s[j][1]));
      mx1 = fmaxf(mx1, fmaxf(s[j][2], s[j][3]));
    }
    mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
    mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
    mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
    mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
    const float mn0 = fmaxf(m0, mx0), mn1 = fmaxf(m1, mx1);
    const float b0 = mn0 == -INFINITY ? 0.f : mn0, b1 = mn1 == -INFINITY ? 0.f : mn1;  // fully masked so far
    const float c0 = fast_exp2(m0 - b0), c1 = fast_exp2(m1 - b1);
    m0 = mn0;
    m1 = mn1;
    lsum[0] *= c0;
    lsum[1] *= c0;
    lsum[2] *= c1;
    lsum[3] *= c1;
#pragma unroll
    for (int j = 0; j < HD / 8; ++j) {
      o[j][0] *= c0;
      o[j][1] *= c0;
      o[j][2] *= c1;
      o[j][3] *= c1;
    }
    // P (bf16, the A operand of P V) for the whole tile before the P V MMAs, so that the exponentials'
    // latency is not on the MMA chain. The row sums use the rounded P that enters the MMA.
    uint32_t pf[NT / 2][4];
#pragma unroll
    for (int k2 = 0; k2 < NT / 2; ++k2) {
      pf[k2][0] = pack_bf16(fast_exp2(s[2 * k2][0] - b0), fast_exp2(s[2 * k2][1] - b0));
      pf[k2][1] = pack_bf16(fast_exp2(s[2 * k2][2] - b1), fast_exp2(s[2 * k2][3] - b1));
      pf[k2][2] = pack_bf16(fast_exp2(s[2 * k2 + 1][0] - b0), fast_exp2(s[2 * k2 + 1][1] - b0));
      pf[k2][3] = pack_bf16(fast_exp2(s[2 * k2 + 1][2] - b1), fast_exp2(s[2 * k2 + 1][3] - b1));
      mma_bf16(lsum, pf[k2], kBf16OnesPair, kBf16OnesPair);
    }
    // O += P V.
#pragma unroll
    for (int k2 = 0; k2 < NT / 2; ++k2) {
#pragma unroll
      for (int d2 = 0; d2 < HD / 16; ++d2) {
        if (d2 * 16 >= hd) break;
        uint32_t b[4];
        const int mi = lane >> 3, key = k2 * 16 + (lane & 7) + (mi & 1) * 8, dim = d2 * 16 + (mi >> 1) * 8;
        ldmatrix_x4_trans(b, vt_s + key * LD + dim);
        mma_bf16(o[2 * d2], pf[k2], b[0], b[1]);
        mma_bf16(o[2 * d2 + 1], pf[k2], b[2], b[3]);
      }
    }
    __syncthreads();  // this stage is reloaded two iterations later
  }

  const float i0 = 1.f / lsum[0], i1 = 1.f / lsum[2];
#pragma unroll
  for (int j = 0; j < HD / 8; ++j) {
    if (j * 8 >= hd) break;
    const int d = j * 8 + 2 * t4;
    const size_t e0 = (size_t(r0) * a.heads + h) * hd + d, e1 = (size_t(r1) * a.heads + h) * hd + d;
    const float2 v0 = make_float2(o[j][0] * i0, o[j][1] * i0), v1 = make_float2(o[j][2] * i1, o[j][3] * i1);
    if (r0 < a.n) *reinterpret_cast<float2*>(a.out + e0) = v0;
    if (r1 < a.n) *reinterpret_cast<float2*>(a.out + e1) = v1;
    if (a.out_bf16) {
      auto* ob = static_cast<__nv_bfloat16*>(a.out_bf16);
      if (r0 < a.n) *reinterpret_cast<uint32_t*>(ob + e0) = pack_bf16(v0.x, v0.y);
      if (r1 < a.n) *reinterpret_cast<uint32_t*>(ob + e1) = pack_bf16(v1.x, v1.y);
    }
  }
}

template <int HD, int BN>
constexpr size_t tc_smem_bytes() {
  return size_t(4) * BN * (HD + 8) * sizeof(__nv_bfloat16);
}

template <int HD, int BN>
void launch_tc(const AttnArgs& a, const __nv_bfloat16* kb, const __nv_bfloat16* vb, bool rope_q, cudaStream_t s) {
  const dim3 grid(unsigned((a.n + kTcRows - 1) / kTcRows), unsigned(a.heads));
  if (rope_q) prefill_tc_kernel<HD, BN, true><<<grid, kTcThreads, tc_smem_bytes<HD, BN>(), s>>>(a, kb, vb);
  else prefill_tc_kernel<HD, BN, false><<<grid, kTcThreads, tc_smem_bytes<HD, BN>(), s>>>(a, kb, vb);
}

int shadow_rows_begin(const AttnArgs& a) { return a.window > 0 ? std::max(0, a.pos0 - a.window + 1) : 0; }

}  // namespace

void attention_prefill(const AttnArgs& a, cudaStream_t s) {
  const dim3 grid(unsigned((a.n + kQB - 1) / kQB), unsigned(a.heads));
  const size_t smem = size_t(2) * kKT * a.hd * sizeof(float);
  if (a.hd <= 64) prefill_kernel<16><<<grid, 128, smem, s>>>(a);
  else if (a.hd <= 128) prefill_kernel<32><<<grid, 128, smem, s>>>(a);
  else if (a.hd <= 256) prefill_kernel<64><<<grid, 128, smem, s>>>(a);
  else throw Error("cuda: attention head_dim " + std::to_string(a.hd) + " > 256 is not supported");
  QF_CUDA(cudaGetLastError());
}

bool attention_prefill_tc_supported(const AttnArgs& a) {
  return a.n >= kMinTcPrefillTokens && a.hd % 16 == 0 && a.hd >= 16 && a.hd <= 256;
}

int64_t attention_prefill_tc_scratch_bytes(const AttnArgs& a) {
  return 2 * int64_t(a.pos0 + a.n) * a.kv_heads * a.hd * int64_t(sizeof(__nv_bfloat16));
}

void attention_prefill_tc(const AttnArgs& a, void* scratch, cudaStream_t s) {
  if (!attention_prefill_tc_supported(a))
    throw Error("cuda: tensor-core prefill attention does not take n=" + std::to_string(a.n) +
                " head_dim=" + std::to_string(a.hd));
  const int64_t kvd = int64_t(a.kv_heads) * a.hd, rows = a.pos0 + a.n;
  auto* kb = static_cast<__nv_bfloat16*>(scratch);
  auto* vb = kb + rows * kvd;
  // With new rows (a.k): rope + cache write + their shadow in one pass; q is rotated by the attention
  // kernel itself. Without: the caches already hold rows [0, pos0 + n) and q is rotated.
  const bool fused = a.k != nullptr;
  if (fused) {
    if (!a.v || !a.rope_cos || !a.rope_sin) throw Error("cuda: fused prefill attention needs v and the rope tables");
    rope_kv_kernel<<<unsigned(a.n), 128, 0, s>>>(a, kb, vb);
    QF_CUDA(cudaGetLastError());
  }
  const int64_t e0 = int64_t(shadow_rows_begin(a)) * kvd, e1 = (fused ? a.pos0 : rows) * kvd;
  if (e1 > e0) {
    const int blocks = int(std::min<int64_t>((e1 - e0) / 4 / 256 + 1, 132 * 8));
    shadow_kv_kernel<<<blocks, 256, 0, s>>>(a.k_cache, a.v_cache, e0, e1, kb, vb);
    QF_CUDA(cudaGetLastError());
  }
  if (a.hd <= 64) launch_tc<64, 64>(a, kb, vb, fused, s);
  else if (a.hd <= 128) launch_tc<128, 64>(a, kb, vb, fused, s);
  else launch_tc<256, 32>(a, kb, vb, fused, s);
  QF_CUDA(cudaGetLastError());
}

void init_prefill_kernels(int device) {
  int optin = 0;
  QF_CUDA(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  const int max_smem = std::max(48 * 1024, optin);
  QF_CUDA(cudaFuncSetAttribute(prefill_kernel<16>, cudaFuncAttributeMaxDynamicSharedMemorySize, max_smem));
  QF_CUDA(cudaFuncSetAttribute(prefill_kernel<32>, cudaFuncAttributeMaxDynamicSharedMemorySize, max_smem));
  QF_CUDA(cudaFuncSetAttribute(prefill_kernel<64>, cudaFuncAttributeMaxDynamicSharedMemorySize, max_smem));
  QF_CUDA(cudaFuncSetAttribute(prefill_tc_kernel<64, 64, false>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                               int(tc_smem_bytes<64, 64>())));
  QF_CUDA(cudaFuncSetAttribute(prefill_tc_kernel<64, 64, true>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                               int(tc_smem_bytes<64, 64>())));
  QF_CUDA(cudaFuncSetAttribute(prefill_tc_kernel<128, 64, false>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                               int(tc_smem_bytes<128, 64>())));
  QF_CUDA(cudaFuncSetAttribute(prefill_tc_kernel<128, 64, true>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                               int(tc_smem_bytes<128, 64>())));
  QF_CUDA(cudaFuncSetAttribute(prefill_tc_kernel<256, 32, false>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                               int(tc_smem_bytes<256, 32>())));
  QF_CUDA(cudaFuncSetAttribute(prefill_tc_kernel<256, 32, true>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                               int(tc_smem_bytes<256, 32>())));
}

// ---- CUDA-free probe (cuda_prefill_api.h) ----

bool prefill_attention_tc_supported(int n, int head_dim) {
  AttnArgs a;
  a.n = n;
  a.hd = head_dim;
  return attention_prefill_tc_supported(a);
}

double run_prefill_attention(const PrefillAttentionProbe& p, bool tensor_cores, int repeats) {
  int dev = 0;
  QF_CUDA(cudaGetDevice(&dev));
  static bool inited[64] = {};
  if (dev < 64 && !inited[dev]) {
    init_prefill_kernels(dev);
    inited[dev] = true;
  }
  AttnArgs a;
  a.q = const_cast<float*>(p.q);
  a.k = const_cast<float*>(p.k);
  a.v = p.v;
  a.k_cache = p.k_cache;
  a.v_cache = p.v_cache;
  a.out = p.out;
  a.rope_cos = p.rope_cos, a.rope_sin = p.rope_sin, a.rope_max_pos = p.rope_max_pos;
  a.n = p.n, a.heads = p.heads, a.kv_heads = p.kv_heads, a.hd = p.head_dim, a.window = p.window;
  a.pos0 = p.pos0, a.capacity = p.capacity;
  if (a.heads <= 0 || a.kv_heads <= 0 || a.heads % a.kv_heads != 0 || a.pos0 + a.n > a.capacity)
    throw Error("run_prefill_attention: bad shape");
  if (p.k && (!tensor_cores || a.pos0 + a.n > a.rope_max_pos))
    throw Error("run_prefill_attention: new k rows need the tensor-core kernel and rope rows up to pos0 + n");
  void* scratch = nullptr;
  if (tensor_cores) QF_CUDA(cudaMalloc(&scratch, size_t(attention_prefill_tc_scratch_bytes(a))));
  std::unique_ptr<void, decltype(&cudaFree)> keep(scratch, &cudaFree);
  cudaEvent_t e0, e1;
  QF_CUDA(cudaEventCreate(&e0));
  QF_CUDA(cudaEventCreate(&e1));
  auto run = [&] {
    if (tensor_cores) attention_prefill_tc(a, scratch, nullptr);
    else attention_prefill(a, nullptr);
  };
  run();  // warm (module load)
  QF_CUDA(cudaEventRecord(e0, nullptr));
  for (int i = 0; i < std::max(1, repeats); ++i) run();
  QF_CUDA(cudaEventRecord(e1, nullptr));
  QF_CUDA(cudaEventSynchronize(e1));
  float ms = 0;
  QF_CUDA(cudaEventElapsedTime(&ms, e0, e1));
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  return double(ms) / std::max(1, repeats);
}

}  // namespace qforge::cuda
