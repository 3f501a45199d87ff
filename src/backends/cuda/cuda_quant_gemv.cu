// backends/cuda/cuda_quant_gemv.cu — decode GEMV entry point (quant_gemv) and the kernels of the 8-bit
// formats (int8, fp8, q8_0; GGUF q5_0 / q6_k / q3_k and, with a per-block minimum, q4_1 / q5_1 / q5_k /
// q2_k as int8 codes) and of bnb 4-bit rows that are not 16-aligned; the 4-bit tile layout goes to
// cuda_quant_gemv4.cu. One token of an 8-bit format runs the streaming GEMV (cuda_gemv_stream.cuh) with
// the Quant8Rows source: 16 codes per 16-byte load, units spread evenly over one wave of warps.
// 2-8 tokens (and inputs too large for shared memory) take gemv_kernel: the input (RMSNorm / SwiGLU
// folded in by stage_linear_input) is staged once per block in shared memory (or, when n_tokens*K is
// too large, once per launch in a global scratch buffer), then each warp streams R=4 rows of row-major
// codes in spans of up to 512 k (per row, Q coalesced 4-byte loads per lane: lane l's quad m is
// k = span + 128 m + 4 l, so a warp reads 128 contiguous bytes per load and the matching input reads
// hit consecutive shared-memory words), decodes quads in registers (byte tricks / hardware cvt) and
// accumulates in f32. Launched with programmatic dependent launch: the first codes are requested
// before waiting for the previous kernel.
#include <algorithm>
#include <string>
#include <vector>

#include "backends/cuda/cuda_gemv_stream.cuh"
#include "backends/cuda/cuda_quant_impl.cuh"
#include "qforge/memory.h"

namespace qforge::cuda {

namespace {

constexpr int kMaxWeights = 4;
constexpr int kWarps = 8, kThreads = kWarps * 32, kRows = 4;
constexpr size_t kSmemLimit = 100 * 1024;  // above this the input is staged in global memory

struct GemvArgs {
  DevQuant w[kMaxWeights];
  float* y[kMaxWeights];
  int group_start[kMaxWeights + 1];  // cumulative row groups (kRows rows each; generic: 1 row)
  int nw = 0;
  LinearInputDev in;
  int ntok = 0, cols = 0, kp = 0;
  const float* xg = nullptr;  // staged input [ntok, kp] in global memory, or null
  int wk = 1;                 // warps splitting the spans of one row group (fast kernel)
  bool accumulate = false;
  float lut[16];
  // generic bnb path
  const uint8_t* flat_codes[kMaxWeights];
  const float* flat_absmax[kMaxWeights];
  int block = 0;
};

__device__ void stage_all(const GemvArgs& a, float* sm, float* red) {
  for (int t = 0; t < a.ntok; ++t) {
    stage_linear_input(a.in, t, a.cols, sm + size_t(t) * a.kp, red);
    for (int i = a.cols + threadIdx.x; i < a.kp; i += blockDim.x) sm[size_t(t) * a.kp + i] = 0.f;
  }
  __syncthreads();
}

__global__ void stage_global_kernel(const LinearInputDev in, int cols, int kp, float* out) {
  __shared__ float red[32];
  extern __shared__ float sm[];
  const int t = blockIdx.x;
  stage_linear_input(in, t, cols, sm, red);
  for (int i = threadIdx.x; i < kp; i += blockDim.x) out[size_t(t) * kp + i] = i < cols ? sm[i] : 0.f;
}

// The Q quads (k = k0 + 128 m + 4 lane) of kRows rows: per row and m, one warp-wide 128-byte load.
template <int Q>
__device__ __forceinline__ void load_span(const DevQuant& d, const int (&rr)[kRows], int k, int lane,
                                          uint32_t (&cw)[kRows][4]) {
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    const uint32_t* p = reinterpret_cast<const uint32_t*>(d.codes + int64_t(rr[r]) * d.code_row_bytes + k) + lane;
#pragma unroll
    for (int m = 0; m < Q; ++m) cw[r][m] = __ldg(p + 32 * m);
  }
}

template <int Q, ElemKind E, ScaleKind S, int NT>
__device__ __forceinline__ void compute_span(const DevQuant& d, const int (&rr)[kRows], int k, int lane, int ntok,
                                             const float* xs, int kp, const uint32_t (&cw)[kRows][4],
                                             float (&acc)[kRows][NT]) {
#pragma unroll
  for (int m = 0; m < Q; ++m) {
    const int kk = k + m * 128 + 4 * lane;
    float4 xv[NT];
    float xq[NT];  // F32Min: the quad's input sum, shared by the kRows rows
#pragma unroll
    for (int t = 0; t < NT; ++t)
      if (t < ntok) {
        xv[t] = *reinterpret_cast<const float4*>(xs + size_t(t) * kp + kk);
        if constexpr (S == ScaleKind::F32Min) xq[t] = (xv[t].x + xv[t].y) + (xv[t].z + xv[t].w);
      }
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      float v[4];
      decode8x4<E>(cw[r][m], v);
      float s, mn;
      quad_scale<S>(d, rr[r], kk, s, mn);
#pragma unroll
      for (int t = 0; t < NT; ++t)
        if (t < ntok) {
          const float p = v[0] * xv[t].x + v[1] * xv[t].y + v[2] * xv[t].z + v[3] * xv[t].w;
          if constexpr (S == ScaleKind::None) acc[r][t] += p;
          else acc[r][t] = fmaf(p, s, acc[r][t]);
          if constexpr (S == ScaleKind::F32Min) acc[r][t] = fmaf(-mn, xq[t], acc[r][t]);
        }
    }
  }
}

template <int Q, ElemKind E, ScaleKind S, int NT>
__device__ __forceinline__ void gemv_span(const DevQuant& d, const int (&rr)[kRows], int k, int lane, int ntok,
                                          const float* xs, int kp, float (&acc)[kRows][NT]) {
  uint32_t cw[kRows][4];
  load_span<Q>(d, rr, k, lane, cw);
  compute_span<Q, E, S, NT>(d, rr, k, lane, ntok, xs, kp, cw, acc);
}

// A block task covers (kWarps / wk) * kRows rows of one weight; the wk warps that share a row group split
// its spans (split-K, wk = 1/2/4/8, chosen on the host to fill the GPU) and meet in shared memory.
template <ElemKind E, ScaleKind S, int NT>
__global__ void __launch_bounds__(kThreads) gemv_kernel(const __grid_constant__ GemvArgs a) {
  extern __shared__ float4 smem4[];
  __shared__ float red[32];
  __shared__ float part[kWarps][kRows * NT];
  const float* xs = a.xg ? a.xg : reinterpret_cast<const float*>(smem4);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int wkn = a.wk, wk = warp % wkn, wr = warp / wkn, task_rows = (kWarps / wkn) * kRows;
  constexpr int QMAX = 4, SPAN = 128 * QMAX;
  const int kp = a.kp, nfull = kp / SPAN;
  bool staged = false;
  for (int task = blockIdx.x; task < a.group_start[a.nw]; task += gridDim.x) {
    int wi = 0;
    while (task >= a.group_start[wi + 1]) ++wi;
    const DevQuant& d = a.w[wi];
    const int r0 = (task - a.group_start[wi]) * task_rows + wr * kRows;
    int rr[kRows];
#pragma unroll
    for (int r = 0; r < kRows; ++r) rr[r] = min(r0 + r, d.rows - 1);
    float acc[kRows][NT];
#pragma unroll
    for (int r = 0; r < kRows; ++r)
#pragma unroll
      for (int t = 0; t < NT; ++t) acc[r][t] = 0.f;
    // Full spans i = wk, wk + wkn, ...: software pipelined (the next span's codes are in flight while
    // this one is computed); the first load is issued before the input is staged.
    uint32_t cur[kRows][4], nxt[kRows][4];
    int i = wk;
    if (i < nfull) load_span<QMAX>(d, rr, i * SPAN, lane, cur);
    if (!staged) {  // block-uniform
      pdl_wait();  // the input comes from the previous kernel; the codes above do not
      pdl_launch_dependents();
      if (!a.xg) stage_all(a, reinterpret_cast<float*>(smem4), red);
      __syncthreads();
      staged = true;
    }
    for (; i < nfull; i += wkn) {
      if (i + wkn < nfull) load_span<QMAX>(d, rr, (i + wkn) * SPAN, lane, nxt);
      compute_span<QMAX, E, S, NT>(d, rr, i * SPAN, lane, a.ntok, xs, kp, cur, acc);
#pragma unroll
      for (int r = 0; r < kRows; ++r)
#pragma unroll
        for (int j = 0; j < 4; ++j) cur[r][j] = nxt[r][j];
    }
    // Tail spans (at most one each of 256 / 128 elements), dealt round-robin to the wk warps.
    int k = nfull * SPAN, j = nfull;
    if (kp - k >= 256) {
      if (j++ % wkn == wk) gemv_span<2, E, S, NT>(d, rr, k, lane, a.ntok, xs, kp, acc);
      k += 256;
    }
    if (kp - k >= 128)
      if (j % wkn == wk) gemv_span<1, E, S, NT>(d, rr, k, lane, a.ntok, xs, kp, acc);
#pragma unroll
    for (int r = 0; r < kRows; ++r)
#pragma unroll
      for (int t = 0; t < NT; ++t) {
        float v = acc[r][t];
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
        if (lane == 0) part[warp][r * NT + t] = v;
      }
    __syncthreads();
    if (wk == 0 && lane < kRows * NT) {
      float v = 0.f;
      for (int w = 0; w < wkn; ++w) v += part[warp + w][lane];
      const int row = r0 + lane / NT, t = lane % NT;
      if (row < d.rows && t < a.ntok) {
        if (d.row_scale) v *= d.row_scale[row];
        v *= d.gscale;
        float* y = a.y[wi] + size_t(t) * d.rows + row;
        *y = a.accumulate ? *y + v : v;
      }
    }
    __syncthreads();
  }
}

// bnb 4-bit whose rows are not quad aligned (K % 4 != 0): one warp per row, per element decode.
template <int NT>
__global__ void __launch_bounds__(kThreads) gemv_generic_kernel(const __grid_constant__ GemvArgs a) {
  extern __shared__ float4 smem4[];
  __shared__ float lut[16];
  __shared__ float red[32];
  if (threadIdx.x < 16) lut[threadIdx.x] = a.lut[threadIdx.x];
  pdl_wait();
  pdl_launch_dependents();
  const float* xs = a.xg;
  if (!xs) {
    stage_all(a, reinterpret_cast<float*>(smem4), red);
    xs = reinterpret_cast<const float*>(smem4);
  }
  __syncthreads();
  const int lane = threadIdx.x & 31, K = a.cols;
  for (int task = blockIdx.x * kWarps + (threadIdx.x >> 5); task < a.group_start[a.nw]; task += gridDim.x * kWarps) {
    int wi = 0;
    while (task >= a.group_start[wi + 1]) ++wi;
    const int row = task - a.group_start[wi], rows = a.w[wi].rows;
    float acc[NT] = {};
    for (int k = lane; k < K; k += 32) {
      const int64_t e = int64_t(row) * K + k;
      const uint8_t byte = __ldg(a.flat_codes[wi] + (e >> 1));
      const float v = lut[(e & 1) ? (byte & 15) : (byte >> 4)] * __ldg(a.flat_absmax[wi] + e / a.block);
#pragma unroll
      for (int t = 0; t < NT; ++t)
        if (t < a.ntok) acc[t] = fmaf(v, xs[size_t(t) * a.kp + k], acc[t]);
    }
#pragma unroll
    for (int t = 0; t < NT; ++t) {
      float v = acc[t];
      for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
      if (lane == 0 && t < a.ntok) {
        float* y = a.y[wi] + size_t(t) * rows + row;
        *y = a.accumulate ? *y + v : v;
      }
    }
  }
}

// One token: the 8-bit rows as a source of the streaming GEMV (cuda_gemv_stream.cuh), units of one row x
// 2048 codes. A lane's 16 codes of a load lie in one q8_0 block of 32, so its block scale is requested with
// them (one scale per 16 codes); rows are Kp bytes (16-byte aligned), zero codes and zero input past K.
template <ElemKind E, ScaleKind S>
struct Quant8Rows {
  static_assert(S == ScaleKind::None || S == ScaleKind::F16 || S == ScaleKind::F32 || S == ScaleKind::F32Min,
                "8-bit formats: no scale, q8_0 / q5_0's f16 block scale, q6_k's f32 scale per 16 or an f32 (scale, "
                "minimum) pair per 16 / 32");
  using Args = GemvArgs;
  static constexpr int kChunk = 32 * 16 * kStreamLoads;
  static constexpr int kSwizzle = 4;  // a lane's 16 codes meet 4 input chunks
  static constexpr bool kBlockSums = S == ScaleKind::F32Min;  // the minimum term's sum(x) per 16
  struct Frag {
    uint4 u[kStreamLoads];
    // F16 (q8_0, q5_0): the block scales of loads 2i (low half) and 2i+1 (high half); F32 (q6_k): one per load;
    // F32Min: (scale, minimum) of load i at 2i, 2i+1
    uint32_t s[S == ScaleKind::F32Min ? 2 * kStreamLoads : S == ScaleKind::F32 ? kStreamLoads : kStreamLoads / 2];
  };
  // Global row of the launch -> (weight, row in that weight).
  __device__ static int weight(const GemvArgs& a, int& row) {
    int wi = 0;
    while (wi + 1 < a.nw && row >= a.w[wi].rows) row -= a.w[wi++].rows;
    return wi;
  }
  __device__ static void load(const GemvArgs& a, int row, int c, int lane, Frag& f) {
    const DevQuant& d = a.w[weight(a, row)];
    const uint8_t* p = d.codes + int64_t(row) * d.code_row_bytes;
#pragma unroll
    for (int j = 0; j < kStreamLoads; ++j) {
      const int k = c * kChunk + (j * 32 + lane) * 16;
      const bool in = k < a.kp;
      f.u[j] = in ? __ldg(reinterpret_cast<const uint4*>(p + k)) : make_uint4(0, 0, 0, 0);
      if constexpr (S == ScaleKind::F16) {
        const uint32_t h = in ? __ldg(static_cast<const unsigned short*>(d.sc) + int64_t(row) * d.sc_row + (k >> d.sc_shift)) : 0u;
        f.s[j / 2] = j % 2 ? f.s[j / 2] | h << 16 : h;
      } else if constexpr (S == ScaleKind::F32) {  // a lane's 16 codes lie in one block of 16
        f.s[j] = in ? __float_as_uint(__ldg(static_cast<const float*>(d.sc) + int64_t(row) * d.sc_row + (k >> d.sc_shift))) : 0u;
      } else if constexpr (S == ScaleKind::F32Min) {  // likewise, in one block of 16 or 32
        const float2 v = in ? __ldg(static_cast<const float2*>(d.sc) + int64_t(row) * d.sc_row + (k >> d.sc_shift)) : make_float2(0.f, 0.f);
        f.s[2 * j] = __float_as_uint(v.x);
        f.s[2 * j + 1] = __float_as_uint(v.y);
      }
    }
  }
  __device__ static float dot(const GemvArgs& a, const Frag& f, const float* xs, const float* xsum, int c, int lane) {
    float sum = 0.f;
#pragma unroll
    for (int j = 0; j < kStreamLoads; ++j) {
      const int k = c * kChunk + (j * 32 + lane) * 16;
      if (k < a.kp) {
        const uint32_t w[4] = {f.u[j].x, f.u[j].y, f.u[j].z, f.u[j].w};
        const float4* xv = reinterpret_cast<const float4*>(xs);
        float p0 = 0.f, p1 = 0.f;
#pragma unroll
        for (int q = 0; q < 4; ++q) {
          float v[4];
          decode8x4<E>(w[q], v);
          const float4 x4 = xv[staged_chunk<kSwizzle>(k / 4 + q)];
          (q & 1 ? p1 : p0) += v[0] * x4.x + v[1] * x4.y + v[2] * x4.z + v[3] * x4.w;
        }
        if constexpr (S == ScaleKind::None) sum += p0 + p1;
        else if constexpr (S == ScaleKind::F32) sum = fmaf(p0 + p1, __uint_as_float(f.s[j]), sum);
        else if constexpr (S == ScaleKind::F32Min)
          sum = fmaf(-xsum[k / 16], __uint_as_float(f.s[2 * j + 1]), fmaf(p0 + p1, __uint_as_float(f.s[2 * j]), sum));
        else sum = fmaf(p0 + p1, __half2float(__ushort_as_half(static_cast<unsigned short>(f.s[j / 2] >> (16 * (j % 2))))), sum);
      }
    }
    return sum;
  }
  __device__ static void store(const GemvArgs& a, int row, float v, bool acc) {
    const int wi = weight(a, row);
    const DevQuant& d = a.w[wi];
    if (d.row_scale) v *= d.row_scale[row];
    v *= d.gscale;
    float* y = a.y[wi] + row;
    *y = acc ? *y + v : v;
  }
};

// The streaming GEMV for one token of an 8-bit format; false when it does not apply (the caller takes
// gemv_kernel).
template <ElemKind E, ScaleKind S>
bool stream8(const GemvArgs& a, int total, cudaStream_t s) {
  return launch_stream_gemv<Quant8Rows<E, S>>(a, a.in, a.cols, a.kp, total, a.accumulate, s);
}
bool try_stream8(QuantFormat f, const GemvArgs& a, int total, cudaStream_t s) {
  switch (f) {
    case QuantFormat::INT8: return stream8<ElemKind::Int8, ScaleKind::None>(a, total, s);
    case QuantFormat::Q8_0:
    case QuantFormat::Q5_0: return stream8<ElemKind::Int8, ScaleKind::F16>(a, total, s);
    case QuantFormat::Q6_K: case QuantFormat::Q3_K: return stream8<ElemKind::Int8, ScaleKind::F32>(a, total, s);
    case QuantFormat::Q4_1: case QuantFormat::Q5_1: case QuantFormat::Q5_K: case QuantFormat::Q2_K:
      return stream8<ElemKind::Int8, ScaleKind::F32Min>(a, total, s);
    case QuantFormat::FP8_E4M3: return stream8<ElemKind::E4M3, ScaleKind::None>(a, total, s);
    case QuantFormat::FP8_E5M2: return stream8<ElemKind::E5M2, ScaleKind::None>(a, total, s);
    default: return false;
  }
}

template <class Kern>
void launch(Kern kernel, const GemvArgs& a, size_t smem, int tasks, cudaStream_t s, bool warp_tasks = false) {
  const int per_sm = resident_blocks(reinterpret_cast<const void*>(kernel), kThreads, smem);
  const int need = warp_tasks ? (tasks + kWarps - 1) / kWarps : tasks;
  const int blocks = std::max(1, std::min(need, per_sm * device_sm_count()));
  launch_pdl(kernel, dim3(unsigned(blocks)), dim3(kThreads), smem, s, a);
}

template <ElemKind E, ScaleKind S>
void launch_fast(const GemvArgs& a, size_t smem, int tasks, cudaStream_t s) {
  if (a.ntok == 1) launch(gemv_kernel<E, S, 1>, a, smem, tasks, s);
  else if (a.ntok == 2) launch(gemv_kernel<E, S, 2>, a, smem, tasks, s);
  else if (a.ntok <= 4) launch(gemv_kernel<E, S, 4>, a, smem, tasks, s);
  else launch(gemv_kernel<E, S, 8>, a, smem, tasks, s);
}

// Once-per-launch input staging in global memory (grow-only scratch).
float* global_stage(size_t floats) {
  static DeviceScratch buf[16];
  return static_cast<float*>(scratch_for_current_device(buf).get(std::max(floats * 4, size_t(4) << 20)));
}

}  // namespace

void quant_gemv(std::span<const CudaQuantWeight* const> ws, const LinearInputDev& in, int n_tokens,
                std::span<float* const> ys, bool accumulate, cudaStream_t s) {
  if (ws.empty()) return;
  if (ws.size() != ys.size()) throw Error("quant_gemv: " + std::to_string(ws.size()) + " weights but " + std::to_string(ys.size()) + " outputs");
  if (n_tokens < 1 || n_tokens > 8) throw Error("quant_gemv: n_tokens " + std::to_string(n_tokens) + " outside 1..8");
  for (const CudaQuantWeight* w : ws)
    if (w->cols != ws[0]->cols)
      throw Error("quant_gemv: weights of one launch must share cols ([" + std::to_string(w->rows) + ", " +
                  std::to_string(w->cols) + "] vs " + std::to_string(ws[0]->cols) + ")");
  // One kernel launch per run of weights with the same format and block (llama.cpp's Q4_K_M puts Q6_K
  // in some attn_v / ffn_down beside Q4_K q / k / gate / up): the input is staged once per launch.
  auto same_kind = [](const CudaQuantWeight* a, const CudaQuantWeight* b) {
    return a->format == b->format && a->generic == b->generic && a->block == b->block;
  };
  if (!std::all_of(ws.begin(), ws.end(), [&](const CudaQuantWeight* w) { return same_kind(w, ws[0]); })) {
    std::vector<bool> done(ws.size(), false);
    for (size_t i = 0; i < ws.size(); ++i) {
      if (done[i]) continue;
      std::vector<const CudaQuantWeight*> gw;
      std::vector<float*> gy;
      for (size_t j = i; j < ws.size(); ++j)
        if (!done[j] && same_kind(ws[j], ws[i])) {
          done[j] = true;
          gw.push_back(ws[j]);
          gy.push_back(ys[j]);
        }
      quant_gemv(gw, in, n_tokens, gy, accumulate, s);
    }
    return;
  }
  if (!ws[0]->generic && ws[0]->desc.bits == 4) return quant_gemv4(ws, in, n_tokens, ys, accumulate, s);
  for (size_t i0 = 0; i0 < ws.size(); i0 += kMaxWeights) {
    const size_t nw = std::min<size_t>(kMaxWeights, ws.size() - i0);
    const CudaQuantWeight& w0 = *ws[i0];
    GemvArgs a;
    a.nw = int(nw);
    a.in = in;
    a.ntok = n_tokens;
    a.cols = int(w0.cols);
    a.kp = int((w0.cols + 127) / 128 * 128);
    a.accumulate = accumulate;
    a.block = w0.block;
    for (int i = 0; i < 16; ++i) a.lut[i] = w0.desc.lut[i];
    a.group_start[0] = 0;
    for (size_t i = 0; i < nw; ++i) {
      const CudaQuantWeight& w = *ws[i0 + i];
      a.w[i] = w.dev;
      a.w[i].rows = int(w.rows);
      a.y[i] = ys[i0 + i];
      a.flat_codes[i] = w.flat_codes;
      a.flat_absmax[i] = w.flat_absmax;
    }
    if (!w0.generic && n_tokens == 1) {
      int total = 0;
      for (size_t i = 0; i < nw; ++i) total += int(ws[i0 + i]->rows);
      if (try_stream8(w0.format, a, total, s)) continue;
    }
    if (!w0.generic) {
      // Split-K width: enough warps in flight to fill the GPU (~32 per SM), at most one span each.
      const int span = 512;
      const int nspans = a.kp / span + __builtin_popcount(unsigned(a.kp % span / 128));
      int64_t groups = 0;
      for (size_t i = 0; i < nw; ++i) groups += (ws[i0 + i]->rows + kRows - 1) / kRows;
      while (a.wk < kWarps && 2 * a.wk <= nspans && groups * a.wk < int64_t(device_sm_count()) * 32) a.wk *= 2;
    }
    const int task_rows = w0.generic ? 1 : (kWarps / a.wk) * kRows;
    for (size_t i = 0; i < nw; ++i)
      a.group_start[i + 1] = a.group_start[i] + int((ws[i0 + i]->rows + task_rows - 1) / task_rows);
    size_t smem = size_t(n_tokens) * a.kp * 4;
    if (smem > std::min<size_t>(kSmemLimit, size_t(device_smem_optin()) - 4 * 1024)) {
      float* g = global_stage(size_t(n_tokens) * a.kp);
      const size_t st_smem = size_t(a.cols) * 4;
      if (st_smem > 40 * 1024)
        QF_CUDA(cudaFuncSetAttribute(stage_global_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(st_smem) + 1024));
      stage_global_kernel<<<n_tokens, 256, st_smem, s>>>(in, a.cols, a.kp, g);
      QF_CUDA(cudaGetLastError());
      a.xg = g;
      smem = 0;
    }
    const int tasks = a.group_start[nw];
    if (w0.generic) {
      if (n_tokens == 1) launch(gemv_generic_kernel<1>, a, smem, tasks, s, true);
      else if (n_tokens <= 4) launch(gemv_generic_kernel<4>, a, smem, tasks, s, true);
      else launch(gemv_generic_kernel<8>, a, smem, tasks, s, true);
      continue;
    }
    switch (w0.format) {
      case QuantFormat::INT8: launch_fast<ElemKind::Int8, ScaleKind::None>(a, smem, tasks, s); break;
      case QuantFormat::Q8_0:
      case QuantFormat::Q5_0: launch_fast<ElemKind::Int8, ScaleKind::F16>(a, smem, tasks, s); break;
      case QuantFormat::Q6_K: case QuantFormat::Q3_K: launch_fast<ElemKind::Int8, ScaleKind::F32>(a, smem, tasks, s); break;
      case QuantFormat::Q4_1: case QuantFormat::Q5_1: case QuantFormat::Q5_K: case QuantFormat::Q2_K:
        launch_fast<ElemKind::Int8, ScaleKind::F32Min>(a, smem, tasks, s); break;
      case QuantFormat::FP8_E4M3: launch_fast<ElemKind::E4M3, ScaleKind::None>(a, smem, tasks, s); break;
      case QuantFormat::FP8_E5M2: launch_fast<ElemKind::E5M2, ScaleKind::None>(a, smem, tasks, s); break;
      default: throw Error("quant_gemv: format " + std::string(quant_traits(w0.format).name) + " has no GPU kernel");
    }
  }
}

}  // namespace qforge::cuda
