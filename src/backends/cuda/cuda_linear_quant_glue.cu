// backends/cuda/cuda_linear_quant_glue.cu — forwards the backend's quantized-Linear calls to the
// quantized kernels of cuda_quant.cuh. Until those land on main every entry throws a clear error.
// To enable at merge, replace each body with the call in its comment (CudaQuantWeight is the
// object upload_quant_weight returns; the void pointers here are CudaQuantWeight*).
#include <string>

#include "backends/cuda/cuda_linear_quant_glue.cuh"

namespace qforge::cuda {
namespace {
[[noreturn]] void not_yet(const Linear& l) {
  throw Error("cuda: quantized format " + std::string(quant_traits(l.qweight.format).name) + " not available yet (" +
              l.name + ")");
}
}  // namespace

std::shared_ptr<void> glue_upload_quant(const Linear& l, cudaStream_t s) {
  // return upload_quant_weight(l.qweight, s);
  not_yet(l);
}

size_t glue_quant_device_bytes(const void* w) {
  // return device_bytes(*static_cast<const CudaQuantWeight*>(w));
  return 0;
}

void glue_quant_gemv(std::span<const void* const> ws, const LinearInputDev& in, int n, std::span<float* const> ys,
                     bool accumulate, cudaStream_t s) {
  // std::vector<const CudaQuantWeight*> q; for (auto* w : ws) q.push_back(static_cast<const CudaQuantWeight*>(w));
  // quant_gemv(q, in, n, ys, accumulate, s);
  throw Error("cuda: quantized GEMV not available yet");
}

void glue_quant_gemm(const void* w, const float* x, int64_t n, float* y, bool accumulate, const CudaGemmContext& ctx,
                     cudaStream_t s) {
  // quant_gemm(*static_cast<const CudaQuantWeight*>(w), x, n, y, accumulate, ctx, s);
  throw Error("cuda: quantized GEMM not available yet");
}

}  // namespace qforge::cuda
