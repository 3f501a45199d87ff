// backends/cuda/cuda_gpu_info.cu — the GPU facts behind backends/gpu_info.h: device list with
// compute capability, memory and the formats its tensor cores run natively, and a measured
// device-to-device copy bandwidth. Installed into gpu_info_none.cpp's provider at start.
#include <cublas_v2.h>

#include <algorithm>
#include <string>
#include <vector>

#include "backends/cuda/cuda_common.cuh"
#include "backends/gpu_info.h"

namespace qforge::cuda {
namespace {

int count_devices() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return n;
}

std::vector<GpuInfo> list_impl() {
  std::vector<GpuInfo> v;
  int prev = 0;
  const int n = count_devices();
  if (n > 0) cudaGetDevice(&prev);
  for (int d = 0; d < n; ++d) {
    GpuInfo g;
    g.index = d;
    cudaDeviceProp p{};
    if (cudaGetDeviceProperties(&p, d) != cudaSuccess) continue;
    g.name = p.name;
    g.cc_major = p.major;
    g.cc_minor = p.minor;
    g.total_bytes = p.totalGlobalMem;
    g.multiprocessors = p.multiProcessorCount;
    int clock_khz = 0, bus_bits = 0;
    cudaDeviceGetAttribute(&clock_khz, cudaDevAttrMemoryClockRate, d);
    cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, d);
    g.peak_bandwidth_gb_s = 2.0 * clock_khz * 1e3 * (bus_bits / 8.0) / 1e9;  // double data rate
    if (cudaSetDevice(d) == cudaSuccess) {
      size_t f = 0, t = 0;
      if (cudaMemGetInfo(&f, &t) == cudaSuccess) g.free_bytes = f;
    }
    const int cc = p.major * 10 + p.minor;
    g.native_formats = {"f32", "f16"};
    if (cc >= 80) g.native_formats.push_back("bf16");
    if (cc >= 80) g.native_formats.push_back("int8");
    if (cc >= 89) g.native_formats.push_back("fp8");
    if (cc >= 100) g.native_formats.push_back("fp4");
    v.push_back(std::move(g));
  }
  cudaGetLastError();
  if (n > 0) cudaSetDevice(prev);
  return v;
}

double copy_bandwidth_impl(int device) {
  if (device < 0 || device >= count_devices())
    throw Error("measure_gpu_copy_bandwidth: no CUDA device " + std::to_string(device));
  int prev = 0;
  QF_CUDA(cudaGetDevice(&prev));
  QF_CUDA(cudaSetDevice(device));
  size_t f = 0, t = 0;
  QF_CUDA(cudaMemGetInfo(&f, &t));
  const size_t bytes = std::min<size_t>(size_t(1) << 30, f / 4) & ~size_t(4095);  // 1 GiB each way when it fits
  if (bytes < (16u << 20)) throw Error("measure_gpu_copy_bandwidth: too little free GPU memory");
  void *a = nullptr, *b = nullptr;
  QF_CUDA(cudaMalloc(&a, bytes));
  if (cudaMalloc(&b, bytes) != cudaSuccess) {
    cudaFree(a);
    throw Error("measure_gpu_copy_bandwidth: out of GPU memory");
  }
  cudaStream_t s;
  cudaEvent_t e0, e1;
  QF_CUDA(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  QF_CUDA(cudaEventCreate(&e0));
  QF_CUDA(cudaEventCreate(&e1));
  QF_CUDA(cudaMemsetAsync(a, 1, bytes, s));
  QF_CUDA(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, s));  // warm-up
  double best = 0;
  for (int r = 0; r < 5; ++r) {
    QF_CUDA(cudaEventRecord(e0, s));
    for (int i = 0; i < 4; ++i) QF_CUDA(cudaMemcpyAsync(i % 2 ? a : b, i % 2 ? b : a, bytes, cudaMemcpyDeviceToDevice, s));
    QF_CUDA(cudaEventRecord(e1, s));
    QF_CUDA(cudaEventSynchronize(e1));
    float ms = 0;
    QF_CUDA(cudaEventElapsedTime(&ms, e0, e1));
    best = std::max(best, 4.0 * 2.0 * double(bytes) / (ms * 1e-3) / 1e9);  // read + write
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  cudaStreamDestroy(s);
  cudaFree(a);
  cudaFree(b);
  cudaSetDevice(prev);
  return best;
}

size_t free_bytes_impl(int device) {
  if (device < 0 || device >= count_devices()) return 0;
  int prev = 0;
  cudaGetDevice(&prev);
  size_t f = 0, t = 0;
  if (cudaSetDevice(device) != cudaSuccess || cudaMemGetInfo(&f, &t) != cudaSuccess) f = 0;
  cudaGetLastError();
  cudaSetDevice(prev);
  return f;
}

bool memory_info_impl(int device, GpuMemoryInfo& out) {
  out = {};
  if (device < 0 || device >= count_devices()) return false;
  int prev = 0;
  cudaGetDevice(&prev);
  const bool ok = cudaSetDevice(device) == cudaSuccess && cudaMemGetInfo(&out.free_bytes, &out.total_bytes) == cudaSuccess;
  if (!ok) out = {};
  cudaGetLastError();
  cudaSetDevice(prev);
  return ok;
}

double gemm_tflops_impl(int device, int m, int n, int k) {
  if (device < 0 || device >= count_devices()) throw Error("measure_gpu_gemm_tflops: no CUDA device " + std::to_string(device));
  if (m < 1 || n < 1 || k < 1) throw Error("measure_gpu_gemm_tflops: sizes must be >= 1");
  int prev = 0;
  QF_CUDA(cudaGetDevice(&prev));
  QF_CUDA(cudaSetDevice(device));
  void *x = nullptr, *w = nullptr, *y = nullptr;
  QF_CUDA(cudaMalloc(&x, size_t(m) * k * 2));
  QF_CUDA(cudaMalloc(&w, size_t(n) * k * 2));
  QF_CUDA(cudaMalloc(&y, size_t(m) * n * 4));
  QF_CUDA(cudaMemset(x, 0, size_t(m) * k * 2));
  QF_CUDA(cudaMemset(w, 0, size_t(n) * k * 2));
  cublasHandle_t h;
  if (cublasCreate(&h) != CUBLAS_STATUS_SUCCESS) throw Error("measure_gpu_gemm_tflops: cublasCreate failed");
  cudaEvent_t e0, e1;
  QF_CUDA(cudaEventCreate(&e0));
  QF_CUDA(cudaEventCreate(&e1));
  const float alpha = 1.f, beta = 0.f;
  auto gemm = [&] {
    return cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &alpha, w, CUDA_R_16BF, k, x, CUDA_R_16BF, k, &beta, y,
                        CUDA_R_32F, n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
  };
  double best = 0;
  bool ok = gemm() == CUBLAS_STATUS_SUCCESS;
  for (int r = 0; ok && r < 5; ++r) {
    cudaEventRecord(e0);
    for (int i = 0; i < 5; ++i) ok = ok && gemm() == CUBLAS_STATUS_SUCCESS;
    cudaEventRecord(e1);
    cudaEventSynchronize(e1);
    float ms = 0;
    cudaEventElapsedTime(&ms, e0, e1);
    best = std::max(best, 5 * 2.0 * m * double(n) * k / (ms * 1e-3) / 1e12);
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  cublasDestroy(h);
  cudaFree(x);
  cudaFree(w);
  cudaFree(y);
  cudaSetDevice(prev);
  if (!ok) throw Error("measure_gpu_gemm_tflops: cuBLAS GEMM failed");
  return best;
}

struct Install {
  Install() { set_gpu_info_provider({&list_impl, &copy_bandwidth_impl, &free_bytes_impl, &gemm_tflops_impl, &memory_info_impl}); }
} install;

}  // namespace
}  // namespace qforge::cuda
