// backends/cuda/cuda_quant_gemm.cu — prefill path for quantized weights: a dequantize kernel that
// writes the weight as bf16 (the element values are bit-identical to the reference dequantizer before
// the bf16 rounding: same operation order, no FMA contraction), an f32 -> bf16 conversion of the
// activations, and one cuBLAS bf16 tensor-core GEMM with f32 accumulation and output.
#include <string>

#include "backends/cuda/cuda_quant_impl.cuh"

namespace qforge::cuda {

namespace {

struct LutArg { float v[16]; };

template <int BITS, ElemKind E, ScaleKind S, bool Z>
__global__ void dequant_kernel(const DevQuant d, const LutArg lut, __nv_bfloat16* out) {
  const int qpr = (d.cols + 3) / 4;  // quads per row
  const int64_t total = int64_t(d.rows) * qpr;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int r = int(i / qpr), k = int(i % qpr) * 4;
    const uint8_t* p = d.codes + int64_t(r) * d.code_row_bytes + quad_byte_offset(k, d.kp, BITS);
    float v[4];
    if constexpr (BITS == 4) {
      const uint32_t c = uint32_t(p[0]) | (uint32_t(p[1]) << 8);
#pragma unroll
      for (int e = 0; e < 4; ++e) v[e] = lut.v[(c >> (4 * e)) & 15];
    } else {
      decode8x4<E>(uint32_t(p[0]) | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16) | (uint32_t(p[3]) << 24), v);
    }
    if constexpr (Z) {
      const float z = float(d.zeros[int64_t(r) * d.sc_row + (k >> d.sc_shift)]);
#pragma unroll
      for (int e = 0; e < 4; ++e) v[e] -= z;
    }
    float s, mn;
    quad_scale<S>(d, r, k, s, mn);
    const float rs = d.row_scale ? d.row_scale[r] : 1.f;
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      if (k + e >= d.cols) break;
      float w = v[e];
      if constexpr (S == ScaleKind::Q4K) w = __fsub_rn(__fmul_rn(w, s), mn);
      else if constexpr (S != ScaleKind::None) w = __fmul_rn(w, s);
      w = __fmul_rn(__fmul_rn(w, rs), d.gscale);
      out[int64_t(r) * d.cols + k + e] = __float2bfloat16_rn(w);
    }
  }
}

__global__ void dequant_generic_kernel(const uint8_t* codes, const float* absmax, int block, int64_t n, LutArg lut,
                                       __nv_bfloat16* out) {
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
    const uint8_t byte = codes[e >> 1];
    out[e] = __float2bfloat16_rn(__fmul_rn(lut.v[(e & 1) ? (byte & 15) : (byte >> 4)], absmax[e / block]));
  }
}

__global__ void to_bf16_kernel(const float* x, int64_t n, __nv_bfloat16* out) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = __float2bfloat16_rn(x[i]);
}

int grid_for(int64_t n) { return int(std::min<int64_t>((n + 255) / 256, 132 * 16)); }

template <int BITS, ElemKind E, ScaleKind S, bool Z>
void run_dequant(const CudaQuantWeight& w, const LutArg& lut, __nv_bfloat16* out, cudaStream_t s) {
  const int64_t quads = w.rows * ((w.cols + 3) / 4);
  dequant_kernel<BITS, E, S, Z><<<grid_for(quads), 256, 0, s>>>(w.dev, lut, out);
}

void check_blas(cublasStatus_t st, const char* what) {
  if (st != CUBLAS_STATUS_SUCCESS) throw Error(std::string("cuBLAS error ") + std::to_string(int(st)) + " in " + what);
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
    case QuantFormat::Q8_0: run_dequant<8, ElemKind::Int8, ScaleKind::F16, false>(w, lut, out, s); break;
    case QuantFormat::FP8_E4M3: run_dequant<8, ElemKind::E4M3, ScaleKind::None, false>(w, lut, out, s); break;
    case QuantFormat::FP8_E5M2: run_dequant<8, ElemKind::E5M2, ScaleKind::None, false>(w, lut, out, s); break;
    default: throw Error("quant_gemm: format " + std::string(quant_traits(w.format).name) + " has no GPU kernel");
  }
  QF_CUDA(cudaGetLastError());
}

void quant_gemm(const CudaQuantWeight& w, const float* x, int64_t n, float* y, bool accumulate,
                const CudaGemmContext& ctx, cudaStream_t s) {
  if (!ctx.blas || !ctx.dequant_scratch || !ctx.act_bf16_scratch)
    throw Error("quant_gemm: CudaGemmContext lacks a cuBLAS handle, dequant_scratch or act_bf16_scratch");
  if (n <= 0) return;
  dequantize_to_bf16(w, ctx.dequant_scratch, s);
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

}  // namespace qforge::cuda
