// backends/cuda/cuda_linear_quant_glue.cu — forwards the backend's quantized-Linear calls to the
// quantized kernels of cuda_quant.cuh (the void pointers here are CudaQuantWeight*), keeping the
// core backend free of the quantized kernels' types.
#include <string>
#include <vector>

#include "backends/cuda/cuda_linear_quant_glue.cuh"
#include "backends/cuda/cuda_quant.cuh"

namespace qforge::cuda {

std::shared_ptr<void> glue_upload_quant(const Linear& l, cudaStream_t s) {
  require_weight_bytes(l, "cuda upload");
  return upload_quant_weight(l.qweight, s);
}

size_t glue_quant_upload_bytes(const Linear& l) { return upload_bytes(l.qweight); }

size_t glue_quant_device_bytes(const void* w) { return device_bytes(*static_cast<const CudaQuantWeight*>(w)); }

void glue_quant_gemv(std::span<const void* const> ws, const LinearInputDev& in, int n, std::span<float* const> ys,
                     bool accumulate, cudaStream_t s) {
  std::vector<const CudaQuantWeight*> q;
  q.reserve(ws.size());
  for (const void* w : ws) q.push_back(static_cast<const CudaQuantWeight*>(w));
  quant_gemv(q, in, n, ys, accumulate, s);
}

void glue_quant_gemm(const void* w, const float* x, int64_t n, float* y, bool accumulate, const CudaGemmContext& ctx,
                     cudaStream_t s) {
  quant_gemm(*static_cast<const CudaQuantWeight*>(w), x, n, y, accumulate, ctx, s);
}

bool glue_quant_gemm_tries_fp8(const void* w, const CudaGemmContext& ctx) {
  return quant_gemm_tries_fp8(*static_cast<const CudaQuantWeight*>(w), ctx);
}

void glue_dequantize_bf16(const void* w, void* out, cudaStream_t s) {
  dequantize_to_bf16(*static_cast<const CudaQuantWeight*>(w), static_cast<__nv_bfloat16*>(out), s);
}

bool glue_fp8_mlp_eligible(const void* gate, const void* up, const void* down, int64_t n, const CudaGemmContext& ctx) {
  using W = const CudaQuantWeight*;
  return fp8_mlp_eligible(*static_cast<W>(gate), *static_cast<W>(up), *static_cast<W>(down), n, ctx);
}

bool glue_quant_mlp_fp8(const void* gate, const void* up, const void* down, const float* x, int64_t n, void* scratch,
                        float* y, bool accumulate, const CudaGemmContext& ctx, cudaStream_t s) {
  using W = const CudaQuantWeight*;
  return quant_mlp_fp8(*static_cast<W>(gate), *static_cast<W>(up), *static_cast<W>(down), x, n, scratch, y, accumulate,
                       ctx, s);
}

}  // namespace qforge::cuda
