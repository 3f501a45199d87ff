// backends/gpu_info_none.cpp — the one definition of the gpu_info.h functions: they forward to the
// provider the CUDA library installs at start (cuda_gpu_info.cu); in a CPU-only build (or before
// installation) there are no GPUs. The provider is a constant-initialised struct of function
// pointers, so there is no static-initialisation-order problem.
#include "backends/gpu_info.h"

#include "qforge/status.h"

namespace qforge {
namespace {
GpuInfoProvider g_provider;  // zero-initialised before any dynamic initialiser runs
}

void set_gpu_info_provider(const GpuInfoProvider& p) { g_provider = p; }

std::vector<GpuInfo> list_gpus() { return g_provider.list ? g_provider.list() : std::vector<GpuInfo>{}; }

double measure_gpu_copy_bandwidth(int device) {
  if (!g_provider.copy_bandwidth) throw Error("measure_gpu_copy_bandwidth: this build has no CUDA backend");
  return g_provider.copy_bandwidth(device);
}

double measure_gpu_gemm_tflops(int device, int m, int n, int k) {
  if (!g_provider.gemm_tflops) throw Error("measure_gpu_gemm_tflops: this build has no CUDA backend");
  return g_provider.gemm_tflops(device, m, n, k);
}

bool cuda_backend_built() { return g_provider.list != nullptr; }

size_t gpu_free_bytes(int device) { return g_provider.free_bytes ? g_provider.free_bytes(device) : 0; }

bool gpu_memory_info(int device, GpuMemoryInfo& out) {
  out = {};
  return g_provider.memory_info && g_provider.memory_info(device, out);
}

}  // namespace qforge
