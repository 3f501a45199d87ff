// benches/gpu/gemv_probe.cu — what one decode GEMV launch can reach on this GPU: a pure streaming
// read (the ceiling for a matrix of that size in one kernel), an empty kernel (the launch floor
// inside a CUDA graph) and variants of the one-token bf16 GEMV structure of cuda_linear_kernels.cu
// (threads per block, 16-byte loads per unit, units in flight per warp). Each case replays a graph
// of launches over enough weight copies that nothing is served from L2.
// build: nvcc -O3 -std=c++20 -arch=sm_90a benches/gpu/gemv_probe.cu -o gemv_probe
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#define CK(x) do { cudaError_t e_ = (x); if (e_ != cudaSuccess) { std::printf("CUDA %s at %d\n", cudaGetErrorString(e_), __LINE__); std::exit(1); } } while (0)

__global__ void empty_kernel() {}

__global__ void read_kernel(const uint4* p, size_t n16, float* out) {
  float s = 0.f;
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n16; i += size_t(gridDim.x) * blockDim.x) {
    const uint4 v = __ldg(p + i);
    s += __uint_as_float(v.x) + __uint_as_float(v.y) + __uint_as_float(v.z) + __uint_as_float(v.w);
  }
  if (s == 1.2345f) *out = s;
}

template <int LOADS>
__device__ __forceinline__ void load_unit(const char* w, int cols, int row, int c, int lane, uint4 (&u)[LOADS]) {
  const char* p = w + size_t(row) * cols * 2;
#pragma unroll
  for (int j = 0; j < LOADS; ++j) {
    const int k = c * (256 * LOADS) + (j * 32 + lane) * 8;
    u[j] = k < cols ? __ldg(reinterpret_cast<const uint4*>(p + size_t(k) * 2)) : make_uint4(0, 0, 0, 0);
  }
}
template <int LOADS>
__device__ __forceinline__ float dot_unit(const uint4 (&u)[LOADS], const float* xs, int cols, int c, int lane) {
  float s = 0.f;
#pragma unroll
  for (int j = 0; j < LOADS; ++j) {
    const int k = c * (256 * LOADS) + (j * 32 + lane) * 8;
    if (k < cols) {
      const uint32_t w[4] = {u[j].x, u[j].y, u[j].z, u[j].w};
      const float4 a = *reinterpret_cast<const float4*>(xs + k), b = *reinterpret_cast<const float4*>(xs + k + 4);
      const float xv[8] = {a.x, a.y, a.z, a.w, b.x, b.y, b.z, b.w};
#pragma unroll
      for (int q = 0; q < 4; ++q) s += __uint_as_float(w[q] << 16) * xv[2 * q] + __uint_as_float(w[q] & 0xffff0000u) * xv[2 * q + 1];
    }
  }
  for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
  return s;
}

// DEPTH units in flight per warp (2 or 3).
template <int THREADS, int MINB, int LOADS, int DEPTH>
__global__ void __launch_bounds__(THREADS, MINB) gemv_kernel(const char* w, const float* x, float* y, int rows, int cols, int nch) {
  extern __shared__ float sm[];
  float* xs = sm;
  float* part = xs + cols;
  const int rb0 = int(int64_t(blockIdx.x) * rows / gridDim.x), rb1 = int(int64_t(blockIdx.x + 1) * rows / gridDim.x);
  const int units = (rb1 - rb0) * nch, warps = THREADS / 32, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int u0 = warp * units / warps, u1 = (warp + 1) * units / warps;
  uint4 A[LOADS], B[LOADS], C[LOADS];
  if (u0 < u1) load_unit<LOADS>(w, cols, rb0 + u0 / nch, u0 % nch, lane, A);
  if (u0 + 1 < u1) load_unit<LOADS>(w, cols, rb0 + (u0 + 1) / nch, (u0 + 1) % nch, lane, B);
  if (DEPTH > 2 && u0 + 2 < u1) load_unit<LOADS>(w, cols, rb0 + (u0 + 2) / nch, (u0 + 2) % nch, lane, C);
  for (int i = threadIdx.x; i < cols; i += THREADS) xs[i] = x[i];
  __syncthreads();
  for (int u = u0; u < u1; u += DEPTH) {
    float s = dot_unit<LOADS>(A, xs, cols, u % nch, lane);
    if (lane == 0) part[u] = s;
    if (u + DEPTH < u1) load_unit<LOADS>(w, cols, rb0 + (u + DEPTH) / nch, (u + DEPTH) % nch, lane, A);
    if (u + 1 < u1) {
      s = dot_unit<LOADS>(B, xs, cols, (u + 1) % nch, lane);
      if (lane == 0) part[u + 1] = s;
      if (u + 1 + DEPTH < u1) load_unit<LOADS>(w, cols, rb0 + (u + 1 + DEPTH) / nch, (u + 1 + DEPTH) % nch, lane, B);
    }
    if (DEPTH > 2 && u + 2 < u1) {
      s = dot_unit<LOADS>(C, xs, cols, (u + 2) % nch, lane);
      if (lane == 0) part[u + 2] = s;
      if (u + 2 + DEPTH < u1) load_unit<LOADS>(w, cols, rb0 + (u + 2 + DEPTH) / nch, (u + 2 + DEPTH) % nch, lane, C);
    }
  }
  __syncthreads();
  for (int r = threadIdx.x; r < rb1 - rb0; r += THREADS) {
    float v = 0.f;
    for (int c = 0; c < nch; ++c) v += part[r * nch + c];
    y[rb0 + r] = v;
  }
}

int g_sms = 132;

template <class F>
double time_graph(F launch_one, int copies, int reps = 20) {
  cudaStream_t s;
  CK(cudaStreamCreate(&s));
  cudaGraph_t g;
  CK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
  for (int r = 0; r < 2; ++r)
    for (int i = 0; i < copies; ++i) launch_one(i, s);
  CK(cudaStreamEndCapture(s, &g));
  cudaGraphExec_t ge;
  CK(cudaGraphInstantiate(&ge, g, 0));
  CK(cudaGraphLaunch(ge, s));
  CK(cudaStreamSynchronize(s));
  cudaEvent_t a, b;
  CK(cudaEventCreate(&a));
  CK(cudaEventCreate(&b));
  CK(cudaEventRecord(a, s));
  for (int r = 0; r < reps; ++r) CK(cudaGraphLaunch(ge, s));
  CK(cudaEventRecord(b, s));
  CK(cudaEventSynchronize(b));
  float ms = 0;
  CK(cudaEventElapsedTime(&ms, a, b));
  CK(cudaGraphExecDestroy(ge));
  CK(cudaGraphDestroy(g));
  CK(cudaStreamDestroy(s));
  return ms * 1000.0 / (reps * 2.0 * copies);  // us per launch
}

template <int THREADS, int MINB, int LOADS, int DEPTH>
void probe_gemv(const char* name, const std::vector<char*>& w, const float* x, float* y, int rows, int cols) {
  const int nch = (cols + 256 * LOADS - 1) / (256 * LOADS);
  const int64_t units = int64_t(rows) * nch;
  int blocks = int(std::min<int64_t>(int64_t(g_sms) * MINB, (units + 63) / 64));
  blocks = std::max(blocks, int((units + 8191) / 8192));
  const size_t smem = (cols + (rows + blocks - 1) / blocks * nch) * 4;
  auto k = gemv_kernel<THREADS, MINB, LOADS, DEPTH>;
  CK(cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, 200 * 1024));
  const double us = time_graph([&](int i, cudaStream_t s) { k<<<blocks, THREADS, smem, s>>>(w[i], x, y, rows, cols, nch); }, int(w.size()));
  const double mb = double(rows) * cols * 2 / 1e6;
  std::printf("  %-26s %8.2f us  %6.0f GB/s\n", name, us, mb * 1e3 / us);
}

int main() {
  CK(cudaDeviceGetAttribute(&g_sms, cudaDevAttrMultiProcessorCount, 0));
  float *x, *y;
  CK(cudaMalloc(&x, 64 << 20));
  CK(cudaMalloc(&y, 64 << 20));
  CK(cudaMemset(x, 0, 64 << 20));
  std::printf("empty kernel in a graph: %.2f us\n",
              time_graph([&](int, cudaStream_t s) { empty_kernel<<<132, 1024, 0, s>>>(); }, 64));
  const int shapes[][2] = {{2560, 2048}, {2048, 2048}, {11264, 2048}, {2048, 5632}, {32000, 2048},
                           {6144, 4096}, {4096, 4096}, {28672, 4096}, {4096, 14336}};
  for (auto& sh : shapes) {
    const int rows = sh[0], cols = sh[1];
    const size_t bytes = size_t(rows) * cols * 2;
    const int copies = int(std::max<size_t>(4, (600u << 20) / bytes));
    std::vector<char*> w(copies);
    for (auto& p : w) { CK(cudaMalloc(&p, bytes)); CK(cudaMemset(p, 0, bytes)); }
    std::printf("[%d x %d] bf16, %.1f MB, %d copies\n", rows, cols, bytes / 1e6, copies);
    for (int bpsm : {1, 2, 4}) {
      const double us = time_graph([&](int i, cudaStream_t s) {
        read_kernel<<<g_sms * bpsm * 2, 512, 0, s>>>(reinterpret_cast<const uint4*>(w[i]), bytes / 16, y); }, copies);
      std::printf("  read %d x 512 thr/SM           %8.2f us  %6.0f GB/s\n", bpsm * 2, us, bytes / 1e3 / us);
    }
    probe_gemv<1024, 1, 4, 2>("gemv 1024t L4 D2 (now)", w, x, y, rows, cols);
    probe_gemv<1024, 1, 2, 2>("gemv 1024t L2 D2", w, x, y, rows, cols);
    probe_gemv<1024, 1, 2, 3>("gemv 1024t L2 D3", w, x, y, rows, cols);
    probe_gemv<512, 2, 4, 2>("gemv 512t x2 L4 D2", w, x, y, rows, cols);
    probe_gemv<512, 1, 4, 3>("gemv 512t x1 L4 D3", w, x, y, rows, cols);
    probe_gemv<256, 4, 4, 2>("gemv 256t x4 L4 D2", w, x, y, rows, cols);
    probe_gemv<256, 2, 8, 2>("gemv 256t x2 L8 D2", w, x, y, rows, cols);
    for (auto p : w) CK(cudaFree(p));
  }
  return 0;
}
