// backends/cuda/cuda_linear_quant_glue.cuh — the backend's only contact with quantized weights:
// upload, decode GEMV and prefill GEMM for Linears whose quantized() is true. Defined in
// cuda_linear_quant_glue.cu (which throws until the quantized kernels land; see there).
#pragma once
#include <memory>
#include <span>

#include "backends/cuda/cuda_quant.cuh"
#include "model/weights.h"

namespace qforge::cuda {

// Device form of l.qweight (opaque to the backend), or throws for a format not available yet.
std::shared_ptr<void> glue_upload_quant(const Linear& l, cudaStream_t s);
size_t glue_quant_upload_bytes(const Linear& l);  // what glue_upload_quant(l) will allocate
size_t glue_quant_device_bytes(const void* w);
void glue_quant_gemv(std::span<const void* const> ws, const LinearInputDev& in, int n, std::span<float* const> ys,
                     bool accumulate, cudaStream_t s);
void glue_quant_gemm(const void* w, const float* x, int64_t n, float* y, bool accumulate, const CudaGemmContext& ctx,
                     cudaStream_t s);
bool glue_quant_gemm_tries_fp8(const void* w, const CudaGemmContext& ctx);
// The weight dequantized to bf16 [rows, cols] at out (bit-identical to the reference dequantizer, then bf16).
void glue_dequantize_bf16(const void* w, void* out, cudaStream_t s);
bool glue_fp8_mlp_eligible(const void* gate, const void* up, const void* down, int64_t n, const CudaGemmContext& ctx);
bool glue_quant_mlp_fp8(const void* gate, const void* up, const void* down, const float* x, int64_t n, void* scratch,
                        float* y, bool accumulate, const CudaGemmContext& ctx, cudaStream_t s);

}  // namespace qforge::cuda
