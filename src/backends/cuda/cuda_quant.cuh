// backends/cuda/cuda_quant.cuh — quantized weights on the GPU: upload (optionally repacked into a
// GPU-friendly layout), fused dequantize-GEMV for decode (input staged through
// stage_linear_input, so RMSNorm/SwiGLU are folded in), and the prefill path (dequantize into
// bf16 + cuBLAS tensor-core GEMM; FP8 weights on FP8 tensor cores on sm_89+).
#pragma once
#include <cublasLt.h>
#include <cublas_v2.h>

#include <memory>
#include <span>

#include "backends/cuda/cuda_common.cuh"
#include "qforge/quant.h"

namespace qforge::cuda {

struct CudaQuantWeight;  // defined in cuda_quant*.cu; opaque to the rest of the backend

// The FP8 prefill path's e4m3 copy of one input (codes + scale in act_bf16_scratch): linears that share
// an input (q/k/v, gate/up) pass the same cache and quantize it once. Valid for the x it names only while
// that x and the scratch are unchanged: owned by one linear_gemm call; quant_gemm's bf16 path clears it.
struct Fp8ActCache {
  const float* x = nullptr;
  int64_t n = 0, cols = 0;
  // Optional, set by whoever staged the input: max |x| (float bits, device) of the input amax_of.
  const float* amax_of = nullptr;
  const unsigned* amax = nullptr;
};

struct CudaGemmContext {
  cublasHandle_t blas = nullptr;
  cublasLtHandle_t lt = nullptr;
  void* workspace = nullptr;  // cuBLAS(Lt) workspace
  size_t workspace_bytes = 0;
  __nv_bfloat16* dequant_scratch = nullptr;  // >= rows*cols of the largest weight, bf16
  float* act_scratch = nullptr;              // >= n*cols floats for a staged prefill input
  __nv_bfloat16* act_bf16_scratch = nullptr; // >= n*cols bf16: quant_gemm's bf16 copy of x (x may be act_scratch)
  int sm_major = 0, sm_minor = 0;
  Fp8ActCache* fp8_act = nullptr;  // optional, see Fp8ActCache
};

// Copies q's buffers to the device (accounted as weights on cuda:0); may repack.
std::shared_ptr<CudaQuantWeight> upload_quant_weight(const QuantWeight& q, cudaStream_t s);
size_t device_bytes(const CudaQuantWeight& w);
// The device bytes upload_quant_weight(q) allocates (the backend's out-of-memory check, before uploading).
size_t upload_bytes(const QuantWeight& q);
// A second device copy of w (benchmarks rotate copies to defeat L2).
std::shared_ptr<CudaQuantWeight> clone_quant_weight(const CudaQuantWeight& w, cudaStream_t s);

// Decode: for each i, ys[i][t, r] (+)= input[t] · W_i[r] for t < n_tokens (n_tokens <= 8). All
// weights share the input; one launch covers every row of every weight.
void quant_gemv(std::span<const CudaQuantWeight* const> ws, const LinearInputDev& in, int n_tokens,
                std::span<float* const> ys, bool accumulate, cudaStream_t s);

// Prefill: y[t, r] (+)= x[t] · W[r] for n tokens, x already staged (f32 [n, cols]). Dequantizes W into
// ctx.dequant_scratch (bf16, [rows, cols]), converts x into ctx.act_bf16_scratch, then one cuBLAS
// bf16 GEMM with f32 accumulation and output (beta = 1 when accumulate). No bias (the caller adds it).
void quant_gemm(const CudaQuantWeight& w, const float* x, int64_t n, float* y, bool accumulate,
                const CudaGemmContext& ctx, cudaStream_t s);
// Whether quant_gemm would try the FP8 tensor-core path for w (per-tensor fp8 on sm_89+); every other weight
// dequantizes to bf16, so a caller may stage x as bf16 itself and run the GEMM on dequantize_to_bf16's output.
bool quant_gemm_tries_fp8(const CudaQuantWeight& w, const CudaGemmContext& ctx);

// The SwiGLU MLP of one prefill with per-tensor FP8 weights (sm_89+, cuBLASLt): x (f32 [n, cols], staged,
// with ctx.fp8_act's amax) quantized to e4m3 once; gate and up as e4m3 GEMMs with bf16 outputs into
// gate_up_scratch (2 x [n, inter] bf16); SwiGLU on those with its amax; the product quantized to e4m3;
// y (+)= the down GEMM (f32). ctx.act_bf16_scratch must hold n * max(cols, inter) * 2 + 1024 bytes. False
// when the weights do not qualify or cuBLASLt refuses a GEMM (y untouched; the caller takes the
// linear() path).
bool fp8_mlp_eligible(const CudaQuantWeight& gate, const CudaQuantWeight& up, const CudaQuantWeight& down, int64_t n,
                      const CudaGemmContext& ctx);
bool quant_mlp_fp8(const CudaQuantWeight& gate, const CudaQuantWeight& up, const CudaQuantWeight& down, const float* x,
                   int64_t n, void* gate_up_scratch, float* y, bool accumulate, const CudaGemmContext& ctx,
                   cudaStream_t s);

// Writes the dequantized weight, bf16 [rows, cols] row-major (the first step of quant_gemm).
void dequantize_to_bf16(const CudaQuantWeight& w, __nv_bfloat16* out, cudaStream_t s);

}  // namespace qforge::cuda
