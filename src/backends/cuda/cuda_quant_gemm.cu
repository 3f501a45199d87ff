// backends/cuda/cuda_quant_gemm.cu — prefill path for quantized weights. FP8 weights with one
// per-tensor scale on sm_89+: cuBLASLt FP8 GEMM ("TN": the row-major [N, Kp] codes read in place,
// activations quantized to e4m3 with a per-tensor scale from an on-device amax, f32 output). Every
// other case: a dequantize kernel writing the weight as bf16 (bit-identical to the reference
// dequantizer before the bf16 rounding), f32 -> bf16 activations, one cuBLAS bf16 GEMM (f32 out).
#include <atomic>
#include <map>
#include <mutex>
#include <string>
#include <tuple>

#include "backends/cuda/cuda_kernels.cuh"
#include "backends/cuda/cuda_prefill_api.h"

#include "backends/cuda/cuda_quant_impl.cuh"

namespace qforge::cuda {

namespace {

struct LutArg { float v[16]; };

// The reference's dequantize arithmetic for one element: code value v (already looked up / decoded, zero
// point subtracted), its block's scale s and minimum mn, the row scale rs and the tensor's gscale.
template <ScaleKind S>
__device__ __forceinline__ float scaled_value(float v, float s, float mn, float rs, float gscale) {
  float w = v;
  if constexpr (S == ScaleKind::Q4K || S == ScaleKind::F32Min) w = __fsub_rn(__fmul_rn(w, s), mn);
  else if constexpr (S != ScaleKind::None) w = __fmul_rn(w, s);
  return __fmul_rn(__fmul_rn(w, rs), gscale);
}

template <ScaleKind S, bool Z>
__device__ __forceinline__ float dequant_value(const DevQuant& d, int r, int k, float v) {
  if constexpr (Z) v -= float(d.zeros[int64_t(r) * d.sc_row + (k >> d.sc_shift)]);
  float s, mn;
  quad_scale<S>(d, r, k, s, mn);
  return scaled_value<S>(v, s, mn, d.row_scale ? d.row_scale[r] : 1.f, d.gscale);
}

// 8-bit row-major codes, cols % 16 == 0: one thread per 16 consecutive k (one 16-byte code load, one block
// scale: the 8-bit formats' blocks are 16 or 32 long or the whole row), two 16-byte bf16 stores.
template <ElemKind E, ScaleKind S>
__global__ void dequant8x16_kernel(const DevQuant d, __nv_bfloat16* out) {
  const int per_row = d.cols / 16;
  const int64_t total = int64_t(d.rows) * per_row;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int r = int(i / per_row), k = int(i % per_row) * 16;
    const uint4 c = __ldg(reinterpret_cast<const uint4*>(d.codes + int64_t(r) * d.code_row_bytes + k));
    float s, mn;
    quad_scale<S>(d, r, k, s, mn);
    const float rs = d.row_scale ? d.row_scale[r] : 1.f;
    const uint32_t w[4] = {c.x, c.y, c.z, c.w};
    uint32_t o[8];
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      float v[4];
      decode8x4<E>(w[q], v);
#pragma unroll
      for (int e = 0; e < 4; e += 2) {
        const __nv_bfloat162 b = __floats2bfloat162_rn(scaled_value<S>(v[e], s, mn, rs, d.gscale),
                                                       scaled_value<S>(v[e + 1], s, mn, rs, d.gscale));
        o[2 * q + e / 2] = *reinterpret_cast<const uint32_t*>(&b);
      }
    }
    uint4* dst = reinterpret_cast<uint4*>(out + int64_t(r) * d.cols + k);
    dst[0] = make_uint4(o[0], o[1], o[2], o[3]);
    dst[1] = make_uint4(o[4], o[5], o[6], o[7]);
  }
}

// 8-bit row-major codes: one thread per quad of 4 consecutive k.
template <ElemKind E, ScaleKind S>
__global__ void dequant8_kernel(const DevQuant d, __nv_bfloat16* out) {
  const int qpr = (d.cols + 3) / 4;  // quads per row
  const int64_t total = int64_t(d.rows) * qpr;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int r = int(i / qpr), k = int(i % qpr) * 4;
    const uint8_t* p = d.codes + int64_t(r) * d.code_row_bytes + k;
    float v[4];
    decode8x4<E>(uint32_t(p[0]) | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16) | (uint32_t(p[3]) << 24), v);
#pragma unroll
    for (int e = 0; e < 4; ++e)
      if (k + e < d.cols) out[int64_t(r) * d.cols + k + e] = __float2bfloat16_rn(dequant_value<S, false>(d, r, k + e, v[e]));
  }
}

// 4-bit mma tile layout: one warp per tile (16 rows x 64 k) at a time, 8 warps a block. Lane l reads its
// 16 bytes of the tile (the warp reads the tile's 512 bytes in one coalesced load): words s = 0..3 (k step
// 16 s) of codes for rows l / 4 and l / 4 + 8, each (row, k step) within one scale block (blocks are 16
// elements or longer: run_dequant checks), so a lane takes 8 block scales for its 32 codes. The values go
// as bf16 pairs into the warp's [16][64] tile in shared memory (rows padded to 36 words: the 32 lanes' pair
// stores fall in 32 banks), then each lane writes 4 row pieces of 8 bf16 with 16-byte stores. Same
// arithmetic per element as dequant_value.
constexpr int kDq4Warps = 8;
constexpr int kDq4Row = 36;  // words per tile row in shared memory (32 + 4 of padding)

template <ScaleKind S, bool Z>
__global__ void __launch_bounds__(32 * kDq4Warps) dequant4_kernel(const DevQuant d, const LutArg lut, bool int_codes,
                                                                  __nv_bfloat16* out) {
  __shared__ __align__(16) uint32_t tiles[kDq4Warps][16 * kDq4Row];
  __shared__ float lut_s[16];
  if (threadIdx.x == 0) {
#pragma unroll
    for (int i = 0; i < 16; ++i) lut_s[i] = lut.v[i];  // constant indices: no local copy of the parameter
  }
  __syncthreads();
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  uint32_t* tile = tiles[warp];
  const int64_t nkc = d.kp / 64, ntiles = int64_t((d.rows + 15) / 16) * nkc;
  const bool vec = d.cols % 8 == 0;
  for (int64_t t = int64_t(blockIdx.x) * kDq4Warps + warp; t < ntiles; t += int64_t(gridDim.x) * kDq4Warps) {
    const int64_t rg = t / nkc, kc = t % nkc;
    const uint4 c = __ldg(reinterpret_cast<const uint4*>(d.codes) + t * 32 + lane);
    const uint32_t w[4] = {c.x, c.y, c.z, c.w};
#pragma unroll
    for (int h = 0; h < 2; ++h) {  // row l / 4 + 8 h: fragment elements i with (i >> 1) & 1 == h
      const int rr = (lane >> 2) + 8 * h, r = int(rg * 16 + rr);
      const bool row_ok = r < d.rows;
      const int rs_row = row_ok ? r : 0;
      const float rs = d.row_scale ? d.row_scale[rs_row] : 1.f;
#pragma unroll
      for (int st = 0; st < 4; ++st) {
        const int kb = int(kc * 64) + 16 * st;  // the k step's first element: one scale block for all 16
        float sc, mn;
        quad_scale<S>(d, rs_row, kb, sc, mn);
        float zero = 0.f;
        if constexpr (Z) zero = float(d.zeros[int64_t(rs_row) * d.sc_row + (kb >> d.sc_shift)]);
#pragma unroll
        for (int j = 0; j < 2; ++j) {  // pair j: elements i = 2 h + 4 j and + 1, k = kb + 2 (l % 4) + 8 j + (0, 1)
          const int k = kb + 2 * (lane & 3) + 8 * j;
          float v[2];
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            const int i = 2 * h + 4 * j + e;
            const int n = int_codes ? (i & 1 ? 4 + (i >> 1) : i >> 1) : i;  // nibble holding element i
            // Formed unconditionally (padding codes and their scale entries exist), then selected: no branch.
            const float val = scaled_value<S>(lut_s[(w[st] >> (4 * n)) & 15] - zero, sc, mn, rs, d.gscale);
            v[e] = row_ok && k + e < d.cols ? val : 0.f;
          }
          const __nv_bfloat162 b = __floats2bfloat162_rn(v[0], v[1]);
          tile[rr * kDq4Row + 8 * st + (lane & 3) + 4 * j] = *reinterpret_cast<const uint32_t*>(&b);
        }
      }
    }
    __syncwarp();
#pragma unroll
    for (int q = 0; q < 4; ++q) {  // 16 rows x 8 pieces of 8 bf16: piece p = lane + 32 q
      const int p = lane + 32 * q, rr = p >> 3, c8 = (p & 7) * 8;
      const int r = int(rg * 16 + rr);
      const int64_t k0 = kc * 64 + c8;
      if (r < d.rows && k0 < d.cols) {
        const uint32_t* src = tile + rr * kDq4Row + c8 / 2;
        __nv_bfloat16* o = out + int64_t(r) * d.cols + k0;
        if (vec && k0 + 8 <= d.cols) {
          *reinterpret_cast<uint4*>(o) = *reinterpret_cast<const uint4*>(src);
        } else {  // from shared memory: a register copy indexed at run time would live in local memory
          const __nv_bfloat16* vb = reinterpret_cast<const __nv_bfloat16*>(src);
          for (int e = 0; e < 8 && k0 + e < d.cols; ++e) o[e] = vb[e];
        }
      }
    }
    __syncwarp();  // the tile is rewritten by the next iteration
  }
}

__global__ void dequant_generic_kernel(const uint8_t* codes, const float* absmax, int block, int64_t n, LutArg lut,
                                       __nv_bfloat16* out) {
  __shared__ float lut_s[16];
  if (threadIdx.x == 0) {
#pragma unroll
    for (int i = 0; i < 16; ++i) lut_s[i] = lut.v[i];
  }
  __syncthreads();
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
    const uint8_t byte = codes[e >> 1];
    out[e] = __float2bfloat16_rn(__fmul_rn(lut_s[(e & 1) ? (byte & 15) : (byte >> 4)], absmax[e / block]));
  }
}

__global__ void to_bf16_kernel(const float* x, int64_t n, __nv_bfloat16* out) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = __float2bfloat16_rn(x[i]);
}

int grid_for(int64_t n) { return int(std::min<int64_t>((n + 255) / 256, 132 * 16)); }

template <int BITS, ElemKind E, ScaleKind S, bool Z>
void run_dequant(const CudaQuantWeight& w, const LutArg& lut, __nv_bfloat16* out, cudaStream_t s) {
  if constexpr (BITS == 4) {
    const int64_t tiles = (w.rows + 15) / 16 * (w.dev.kp / 64);
    // Every 4-bit format's blocks are 16+ elements (block sizes 32..4096, K % 16 == 0 in the tile layout).
    if (S != ScaleKind::None && w.dev.sc_shift < 4)
      throw Error("cuda dequantize: 4-bit scale blocks of " + std::to_string(1 << w.dev.sc_shift) +
                  " elements (16 or more expected)");
    const int64_t blocks = (tiles + kDq4Warps - 1) / kDq4Warps;
    dequant4_kernel<S, Z><<<int(std::min<int64_t>(blocks, 132 * 8)), 32 * kDq4Warps, 0, s>>>(w.dev, lut,
                                                                                             w.desc.int_codes, out);
  } else {
    if (w.cols % 16 == 0) {
      dequant8x16_kernel<E, S><<<grid_for(w.rows * (w.cols / 16)), 256, 0, s>>>(w.dev, out);
    } else {
      const int64_t quads = w.rows * ((w.cols + 3) / 4);
      dequant8_kernel<E, S><<<grid_for(quads), 256, 0, s>>>(w.dev, out);
    }
  }
}

void check_blas(cublasStatus_t st, const char* what) {
  if (st != CUBLAS_STATUS_SUCCESS) throw Error(std::string("cuBLAS error ") + std::to_string(int(st)) + " in " + what);
}

// ---- FP8 tensor-core path ----

std::atomic<int64_t> g_fp8_gemms{0}, g_fp8_act_quants{0};

// amax |x| over n4 float4s into *amax (bits of a non-negative float; zeroed before). One atomic per
// block (one per warp serialized ~17k atomics on one word: 24 us for a 2048 x 4096 input, measured).
__global__ void __launch_bounds__(256) amax_kernel(const float4* x, int64_t n4, unsigned* amax) {
  __shared__ float red[32];
  float m = 0.f;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n4; i += int64_t(gridDim.x) * blockDim.x) {
    const float4 v = x[i];
    m = fmaxf(m, fmaxf(fmaxf(fabsf(v.x), fabsf(v.y)), fmaxf(fabsf(v.z), fabsf(v.w))));
  }
  m = block_max(m, red);
  if (threadIdx.x == 0) atomicMax(amax, __float_as_uint(m));
}

// 4 values of the activations as f32: an f32 input, or 4 bf16 (the FP8 MLP's SwiGLU product).
__device__ __forceinline__ float4 act4(const float4& v) { return v; }
__device__ __forceinline__ float4 act4(const uint2& u) {
  const float2 a = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&u.x));
  const float2 b = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&u.y));
  return make_float4(a.x, a.y, b.x, b.y);
}

// xq = sat_rne(x / s_b) as e4m3 with s_b = amax / 448 (1 when amax is 0); writes s_b for cuBLASLt's B
// scale pointer (the weight's per-tensor scale goes in as alpha). 4 values per step (In: float4 or 4
// bf16 as uint2), n4 = count / 4.
template <class In>
__global__ void quant_act_kernel(const In* x, int64_t n4, const unsigned* amax, float* b_scale_out, uint32_t* xq) {
  const float am = __uint_as_float(*amax);
  const float sb = am > 0.f ? am / 448.f : 1.f, inv = 1.f / sb;
  if (blockIdx.x == 0 && threadIdx.x == 0) *b_scale_out = sb;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n4; i += int64_t(gridDim.x) * blockDim.x) {
    const float4 v = act4(x[i]);
    const uint32_t lo = __nv_cvt_float2_to_fp8x2(make_float2(v.x * inv, v.y * inv), __NV_SATFINITE, __NV_E4M3);
    const uint32_t hi = __nv_cvt_float2_to_fp8x2(make_float2(v.z * inv, v.w * inv), __NV_SATFINITE, __NV_E4M3);
    xq[i] = lo | (hi << 16);
  }
}

int sm_version() {
  int dev = 0;
  QF_CUDA(cudaGetDevice(&dev));
  static std::mutex mu;
  static std::map<int, int> cache;
  std::lock_guard lk(mu);
  if (auto it = cache.find(dev); it != cache.end()) return it->second;
  int major = 0, minor = 0;
  QF_CUDA(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
  QF_CUDA(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev));
  return cache[dev] = major * 10 + minor;
}

bool fp8_eligible(const CudaQuantWeight& w, const CudaGemmContext& ctx) {
  return ctx.lt && ctx.workspace && (w.format == QuantFormat::FP8_E4M3 || w.format == QuantFormat::FP8_E5M2) &&
         !w.generic && !w.dev.row_scale && w.cols % 16 == 0 && w.rows % 4 == 0 && sm_version() >= 89;
}

struct LtKey {
  int dev;
  int64_t m, n, k;
  bool e5m2, beta, y_bf16;
  size_t ws;
  auto operator<=>(const LtKey&) const = default;
};
struct LtPlan {
  bool known = false, ok = false;  // known: an algorithm was tried (ok: it ran)
  cublasLtMatmulAlgo_t algo{};
};
std::mutex g_fp8_mu;
std::string g_fp8_error;  // why the last FP8 attempt fell back (empty: none did)

// An input already in e4m3 (codes [n, K] and the device scale s_b that cuBLASLt multiplies back).
struct Fp8Codes {
  const uint8_t* codes;
  const float* b_scale;
};

// Row-major y[n, N] (+)= x[n, K] W[N, K]^T as column-major D[N, n] = op_T(A[K, N]) B[K, n]; false when
// cuBLASLt has no FP8 algorithm for the shape (the caller then takes the bf16 path). The input is x
// (f32, quantized here into ctx's scratch) or `pre`; y is f32, or bf16 when y_bf16 (then !accumulate).
bool fp8_gemm(const CudaQuantWeight& w, const float* x, const Fp8Codes* pre, int64_t n, void* y, bool y_bf16,
              bool accumulate, const CudaGemmContext& ctx, cudaStream_t s) {
  const int64_t N = w.rows, K = w.cols;
  const cudaDataType_t at = w.format == QuantFormat::FP8_E5M2 ? CUDA_R_8F_E5M2 : CUDA_R_8F_E4M3;
  const cudaDataType_t yt = y_bf16 ? CUDA_R_16BF : CUDA_R_32F;
  int dev = 0;
  QF_CUDA(cudaGetDevice(&dev));
  const LtKey key{dev, N, n, K, at == CUDA_R_8F_E5M2, accumulate, y_bf16, ctx.workspace_bytes};
  static std::mutex mu;
  static std::map<LtKey, LtPlan> plans;
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t la = nullptr, lb = nullptr, lc = nullptr;
  struct Free {
    cublasLtMatmulDesc_t& op;
    cublasLtMatrixLayout_t &la, &lb, &lc;
    ~Free() {
      if (op) cublasLtMatmulDescDestroy(op);
      if (la) cublasLtMatrixLayoutDestroy(la);
      if (lb) cublasLtMatrixLayoutDestroy(lb);
      if (lc) cublasLtMatrixLayoutDestroy(lc);
    }
  } release{op, la, lb, lc};
  // Scratch: activation codes, then the amax word and the B scale in act_bf16_scratch (n*K bytes + 512
  // of its n*K*2). The weight codes are read in place (row stride Kp).
  const uint8_t* wq = w.dev.codes;
  auto* xq = reinterpret_cast<uint8_t*>(ctx.act_bf16_scratch);
  // amax and b_scale each on its own 256-byte boundary (cuBLASLt's default pointer alignment).
  const int64_t xal = (n * K + 255) / 256 * 256;
  if (!pre && xal + 2 * 256 > n * K * 2) return false;
  auto* amax = reinterpret_cast<unsigned*>(xq + xal);
  auto* b_scale_p = reinterpret_cast<float*>(xq + xal + 256);
  const uint8_t* b_codes = pre ? pre->codes : xq;
  const cublasOperation_t tn[2] = {CUBLAS_OP_T, CUBLAS_OP_N};
  check_blas(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F), "cublasLtMatmulDescCreate");
  check_blas(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &tn[0], sizeof(tn[0])), "TRANSA");
  check_blas(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &tn[1], sizeof(tn[1])), "TRANSB");
  const float* b_scale = pre ? pre->b_scale : b_scale_p;
  check_blas(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &b_scale, sizeof(b_scale)),
             "B_SCALE_POINTER");
  check_blas(cublasLtMatrixLayoutCreate(&la, at, uint64_t(K), uint64_t(N), w.dev.code_row_bytes), "layout A");
  check_blas(cublasLtMatrixLayoutCreate(&lb, CUDA_R_8F_E4M3, uint64_t(K), uint64_t(n), K), "layout B");
  check_blas(cublasLtMatrixLayoutCreate(&lc, yt, uint64_t(N), uint64_t(n), N), "layout C/D");
  LtPlan plan;
  {
    std::lock_guard lk(mu);
    if (auto it = plans.find(key); it != plans.end()) plan = it->second;
  }
  if (plan.known && !plan.ok) return false;
  // Candidate algorithms: the cached one, else up to 8 from the heuristic, tried in order below.
  constexpr int kMaxAlgos = 8;
  cublasLtMatmulHeuristicResult_t res[kMaxAlgos] = {};
  int found = 0;
  if (!plan.known) {
    cublasLtMatmulPreference_t pref = nullptr;
    check_blas(cublasLtMatmulPreferenceCreate(&pref), "cublasLtMatmulPreferenceCreate");
    const size_t ws = ctx.workspace_bytes;
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws));
    const cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(ctx.lt, op, la, lb, lc, lc, pref, kMaxAlgos, res, &found);
    cublasLtMatmulPreferenceDestroy(pref);
    if (st != CUBLAS_STATUS_SUCCESS || found == 0) {
      std::lock_guard lk(g_fp8_mu);
      g_fp8_error = "no cuBLASLt FP8 algorithm (status " + std::to_string(int(st)) + ")";
      std::lock_guard lk2(mu);
      plans[key] = LtPlan{true, false, {}};
      return false;
    }
  }
  Fp8ActCache* cache = ctx.fp8_act;
  if (!pre && (!cache || cache->x != x || cache->n != n || cache->cols != K)) {  // else: already in xq
    const int threads = 256;
    const int64_t n4 = n * K / 4;
    const unsigned* am = cache && cache->amax && cache->amax_of == x ? cache->amax : nullptr;  // from the staging
    if (!am) {
      QF_CUDA(cudaMemsetAsync(amax, 0, sizeof(unsigned), s));
      amax_kernel<<<grid_for(n4), threads, 0, s>>>(reinterpret_cast<const float4*>(x), n4, amax);
      QF_CUDA(cudaGetLastError());
      am = amax;
    }
    quant_act_kernel<<<grid_for(n4), threads, 0, s>>>(reinterpret_cast<const float4*>(x), n4, am, b_scale_p,
                                                       reinterpret_cast<uint32_t*>(xq));
    QF_CUDA(cudaGetLastError());
    if (cache) cache->x = x, cache->n = n, cache->cols = K;
    g_fp8_act_quants.fetch_add(1, std::memory_order_relaxed);
  }
  const float alpha = w.dev.gscale, beta = accumulate ? 1.f : 0.f;  // alpha: the weight's per-tensor scale
  auto matmul = [&](const cublasLtMatmulAlgo_t& algo) {
    return cublasLtMatmul(ctx.lt, op, &alpha, wq, la, b_codes, lb, &beta, y, lc, y, lc, &algo, ctx.workspace,
                          ctx.workspace_bytes, s);
  };
  cublasStatus_t st = CUBLAS_STATUS_NOT_SUPPORTED;
  if (plan.known) {
    st = matmul(plan.algo);
  } else {
    // A rejected algorithm launches nothing; y is untouched until one runs.
    for (int i = 0; i < found && st != CUBLAS_STATUS_SUCCESS; ++i) {
      st = matmul(res[i].algo);
      if (st == CUBLAS_STATUS_SUCCESS) plan = LtPlan{true, true, res[i].algo};
    }
    if (st != CUBLAS_STATUS_SUCCESS) plan = LtPlan{true, false, {}};
    std::lock_guard lk(mu);
    plans[key] = plan;
  }
  if (st != CUBLAS_STATUS_SUCCESS) {
    std::lock_guard lk(g_fp8_mu);
    g_fp8_error = std::string("cublasLtMatmul (fp8): ") + cublasGetStatusString(st) + " for " + std::to_string(found) +
                  " algorithm(s), N=" + std::to_string(N) + " K=" + std::to_string(K) + " n=" + std::to_string(n);
    return false;  // the kernels above only wrote scratch: the bf16 path redoes the product
  }
  g_fp8_gemms.fetch_add(1, std::memory_order_relaxed);
  return true;
}

}  // namespace

void dequantize_to_bf16(const CudaQuantWeight& w, __nv_bfloat16* out, cudaStream_t s) {
  LutArg lut;
  for (int i = 0; i < 16; ++i) lut.v[i] = w.desc.lut[i];
  if (w.generic) {
    dequant_generic_kernel<<<grid_for(w.rows * w.cols), 256, 0, s>>>(w.flat_codes, w.flat_absmax, w.block,
                                                                       w.rows * w.cols, lut, out);
    QF_CUDA(cudaGetLastError());
    return;
  }
  switch (w.format) {
    case QuantFormat::NF4:
    case QuantFormat::FP4: run_dequant<4, ElemKind::Lut4, ScaleKind::F32, false>(w, lut, out, s); break;
    case QuantFormat::NVFP4: run_dequant<4, ElemKind::Lut4, ScaleKind::E4M3, false>(w, lut, out, s); break;
    case QuantFormat::MXFP4: run_dequant<4, ElemKind::Lut4, ScaleKind::E8M0, false>(w, lut, out, s); break;
    case QuantFormat::INT4: run_dequant<4, ElemKind::Lut4, ScaleKind::F16, true>(w, lut, out, s); break;
    case QuantFormat::Q4_0: run_dequant<4, ElemKind::Lut4, ScaleKind::F16, false>(w, lut, out, s); break;
    case QuantFormat::Q4_K: run_dequant<4, ElemKind::Lut4, ScaleKind::Q4K, false>(w, lut, out, s); break;
    case QuantFormat::INT8: run_dequant<8, ElemKind::Int8, ScaleKind::None, false>(w, lut, out, s); break;
    case QuantFormat::Q8_0:
    case QuantFormat::Q5_0: run_dequant<8, ElemKind::Int8, ScaleKind::F16, false>(w, lut, out, s); break;
    case QuantFormat::Q6_K: case QuantFormat::Q3_K: run_dequant<8, ElemKind::Int8, ScaleKind::F32, false>(w, lut, out, s); break;
    case QuantFormat::Q4_1: case QuantFormat::Q5_1: case QuantFormat::Q5_K: case QuantFormat::Q2_K:
      run_dequant<8, ElemKind::Int8, ScaleKind::F32Min, false>(w, lut, out, s); break;
    case QuantFormat::FP8_E4M3: run_dequant<8, ElemKind::E4M3, ScaleKind::None, false>(w, lut, out, s); break;
    case QuantFormat::FP8_E5M2: run_dequant<8, ElemKind::E5M2, ScaleKind::None, false>(w, lut, out, s); break;
    default: throw Error("quant_gemm: format " + std::string(quant_traits(w.format).name) + " has no GPU kernel");
  }
  QF_CUDA(cudaGetLastError());
}

bool quant_gemm_tries_fp8(const CudaQuantWeight& w, const CudaGemmContext& ctx) { return fp8_eligible(w, ctx); }

void quant_gemm(const CudaQuantWeight& w, const float* x, int64_t n, float* y, bool accumulate,
                const CudaGemmContext& ctx, cudaStream_t s) {
  if (!ctx.blas || !ctx.dequant_scratch || !ctx.act_bf16_scratch)
    throw Error("quant_gemm: CudaGemmContext lacks a cuBLAS handle, dequant_scratch or act_bf16_scratch");
  if (n <= 0) return;
  if (fp8_eligible(w, ctx) && reinterpret_cast<uintptr_t>(x) % 16 == 0 &&
      fp8_gemm(w, x, nullptr, n, y, false, accumulate, ctx, s))
    return;
  dequantize_to_bf16(w, ctx.dequant_scratch, s);
  if (ctx.fp8_act) ctx.fp8_act->x = nullptr;  // act_bf16_scratch is overwritten below (the amax stays valid)
  to_bf16_kernel<<<grid_for(n * w.cols), 256, 0, s>>>(x, n * w.cols, ctx.act_bf16_scratch);
  QF_CUDA(cudaGetLastError());
  check_blas(cublasSetStream(ctx.blas, s), "cublasSetStream");
  const float alpha = 1.f, beta = accumulate ? 1.f : 0.f;
  // Row-major y[n, N] = x[n, K] W[N, K]^T  ==  column-major C[N, n] = W^T(K x N)^T . x^T(K x n).
  check_blas(cublasGemmEx(ctx.blas, CUBLAS_OP_T, CUBLAS_OP_N, int(w.rows), int(n), int(w.cols), &alpha,
                          ctx.dequant_scratch, CUDA_R_16BF, int(w.cols), ctx.act_bf16_scratch, CUDA_R_16BF,
                          int(w.cols), &beta, y, CUDA_R_32F, int(w.rows), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
             "cublasGemmEx (quant_gemm)");
}

bool fp8_mlp_eligible(const CudaQuantWeight& gate, const CudaQuantWeight& up, const CudaQuantWeight& down, int64_t n,
                      const CudaGemmContext& ctx) {
  // n * inter % 128: up's output starts n * inter elements after gate's and stays on a 256-byte boundary,
  // like every pointer the cached cuBLASLt plans were chosen for (TinyLlama, Llama-3-8B: inter % 128 == 0).
  return fp8_eligible(gate, ctx) && fp8_eligible(up, ctx) && fp8_eligible(down, ctx) && gate.rows == up.rows &&
         gate.cols == up.cols && down.cols == gate.rows && n * gate.rows % 128 == 0;
}

bool quant_mlp_fp8(const CudaQuantWeight& gate, const CudaQuantWeight& up, const CudaQuantWeight& down, const float* x,
                   int64_t n, void* gate_up_scratch, float* y, bool accumulate, const CudaGemmContext& ctx,
                   cudaStream_t s) {
  if (!fp8_mlp_eligible(gate, up, down, n, ctx) || reinterpret_cast<uintptr_t>(x) % 16 != 0) return false;
  const int64_t half = n * gate.rows;
  auto* g16 = static_cast<__nv_bfloat16*>(gate_up_scratch);
  __nv_bfloat16* u16 = g16 + half;
  if (!fp8_gemm(gate, x, nullptr, n, g16, true, false, ctx, s) || !fp8_gemm(up, x, nullptr, n, u16, true, false, ctx, s))
    return false;
  // The product's codes, amax and scale in act_bf16_scratch (>= n * inter * 2 bytes, see the header); x's
  // codes there are overwritten.
  auto* codes = reinterpret_cast<uint8_t*>(ctx.act_bf16_scratch);
  const int64_t al = (half + 255) / 256 * 256;
  auto* amax = reinterpret_cast<unsigned*>(codes + al);
  auto* b_scale = reinterpret_cast<float*>(codes + al + 256);
  if (ctx.fp8_act) ctx.fp8_act->x = nullptr;
  QF_CUDA(cudaMemsetAsync(amax, 0, sizeof(unsigned), s));
  swiglu_bf16_inplace(g16, u16, half, s, amax);
  quant_act_kernel<<<grid_for(half / 4), 256, 0, s>>>(reinterpret_cast<const uint2*>(g16), half / 4, amax, b_scale,
                                                           reinterpret_cast<uint32_t*>(codes));
  QF_CUDA(cudaGetLastError());
  g_fp8_act_quants.fetch_add(1, std::memory_order_relaxed);
  const Fp8Codes pre{codes, b_scale};
  return fp8_gemm(down, nullptr, &pre, n, y, false, accumulate, ctx, s);
}

int64_t fp8_prefill_gemm_count() { return g_fp8_gemms.load(std::memory_order_relaxed); }
int64_t fp8_prefill_act_quant_count() { return g_fp8_act_quants.load(std::memory_order_relaxed); }

std::string fp8_prefill_last_error() {
  std::lock_guard lk(g_fp8_mu);
  return g_fp8_error;
}

}  // namespace qforge::cuda
