// backends/gpu_info.h — what the CLI asks about GPUs (qforge info / bench) without including CUDA:
// the list of devices with their native formats, free memory, and a measured device-to-device
// copy bandwidth. The CUDA library installs a provider at start (a static registrar); without it
// (CPU-only build) the list is empty. One definition of each function: gpu_info_none.cpp.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

namespace qforge {

struct GpuInfo {
  int index = 0;
  std::string name;
  int cc_major = 0, cc_minor = 0;       // compute capability
  size_t total_bytes = 0, free_bytes = 0;
  int multiprocessors = 0;
  double peak_bandwidth_gb_s = 0;       // from memory clock and bus width (theoretical)
  std::vector<std::string> native_formats;  // e.g. "bf16", "f16", "fp8" (sm_89+), "fp4" (sm_100+)
};

// Every CUDA device the runtime sees ({} without the CUDA backend or without a driver).
std::vector<GpuInfo> list_gpus();
// Device-to-device copy bandwidth of `device` in GB/s (bytes read + written per second), measured
// now (~0.2 s). Throws qforge::Error without the CUDA backend or for a bad device index.
double measure_gpu_copy_bandwidth(int device);
// cuBLAS bf16 × bf16 → f32 GEMM rate (the backend's prefill call) for y[m, n] = x[m, k] · W[n, k]ᵀ,
// in TFLOP/s (best of a few runs). Throws like measure_gpu_copy_bandwidth.
double measure_gpu_gemm_tflops(int device, int m, int n, int k);
// Whether this binary contains the CUDA backend (whether or not a GPU is present).
bool cuda_backend_built();
// Free memory of `device` in bytes (0 without the CUDA backend).
size_t gpu_free_bytes(int device);
// What the driver says of `device` now (cudaMemGetInfo): free and total bytes, for every process
// together. False (both 0) without the CUDA backend or for a bad device index.
struct GpuMemoryInfo {
  size_t free_bytes = 0, total_bytes = 0;
};
bool gpu_memory_info(int device, GpuMemoryInfo& out);

// The CUDA library fills this in at start-up; nothing else should call it.
struct GpuInfoProvider {
  std::vector<GpuInfo> (*list)() = nullptr;
  double (*copy_bandwidth)(int) = nullptr;
  size_t (*free_bytes)(int) = nullptr;
  double (*gemm_tflops)(int, int, int, int) = nullptr;
  bool (*memory_info)(int, GpuMemoryInfo&) = nullptr;
};
void set_gpu_info_provider(const GpuInfoProvider& p);

}  // namespace qforge
