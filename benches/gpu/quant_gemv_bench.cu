// benches/gpu/quant_gemv_bench.cu — GB/s of the quantized decode GEMV (weight bytes on the device per
// call, timed as a CUDA graph of 20 GEMVs, median of 50 replays) for every format and the Llama shapes, against the measured D2D copy bandwidth, plus the
// prefill quant_gemm TFLOP/s at n = 2048 against a plain cuBLAS bf16 GEMM. Weights are random valid
// buffers (timing does not depend on values). Build (from the repository root, after building libqforge.a):
//   nvcc -std=c++20 -O3 -arch=sm_90 --expt-relaxed-constexpr -Isrc -Iinclude benches/gpu/quant_gemv_bench.cu \
//     src/backends/cuda/cuda_quant_*.cu src/backends/cuda/cuda_linear_kernels.cu \
//     src/backends/cuda/cuda_attention*.cu build/libqforge.a -lcublas -lcublasLt -o quant_gemv_bench
// (the quantized GEMV shares the programmatic-dependent-launch switch of cuda_linear_kernels.cu)
// Run: ./quant_gemv_bench [--quick] [--only FORMAT] [--shape ROWSxCOLS] [--no-prefill]  (filters for profiling)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "backends/cuda/cuda_kernels.cuh"
#include "backends/cuda/cuda_quant.cuh"
#include "qforge/dtype.h"

using namespace qforge;
using namespace qforge::cuda;

namespace {

std::mt19937 rng(42);

void fill_random(Tensor& t) {
  uint8_t* p = t.data<uint8_t>();
  const size_t n = t.nbytes();
  for (size_t i = 0; i + 4 <= n; i += 4) {
    const uint32_t v = rng();
    std::memcpy(p + i, &v, 4);
  }
}

// A random but valid QuantWeight in format f (scales finite, GGUF block scales set).
QuantWeight synth(QuantFormat f, int64_t N, int64_t K) {
  QuantWeight q;
  q.format = f;
  q.rows = N;
  q.cols = K;
  auto f32s = [&](int64_t n, float v) {
    Tensor t = Tensor::empty(DType::F32, {n});
    for (int64_t i = 0; i < n; ++i) t.data<float>()[i] = v;
    return t;
  };
  switch (f) {
    case QuantFormat::NF4:
      q.params.blocksize = 64;
      q.data = Tensor::empty(DType::U8, {(N * K + 1) / 2});
      q.scales = f32s((N * K + 63) / 64, 0.05f);
      break;
    case QuantFormat::INT8:
      q.data = Tensor::empty(DType::I8, {N, K});
      q.scales = f32s(N, 0.1f);
      break;
    case QuantFormat::FP8_E4M3:
    case QuantFormat::FP8_E5M2:
      q.data = Tensor::empty(f == QuantFormat::FP8_E4M3 ? DType::F8_E4M3 : DType::F8_E5M2, {N, K});
      q.scales = f32s(1, 0.01f);
      break;
    case QuantFormat::NVFP4:
      q.data = Tensor::empty(DType::U8, {N, K / 2});
      q.scales = Tensor::empty(DType::F8_E4M3, {N, K / 16});
      std::memset(q.scales.data<uint8_t>(), 0x38, size_t(N * K / 16));
      q.scales2 = f32s(1, 0.001f);
      break;
    case QuantFormat::MXFP4:
      q.data = Tensor::empty(DType::U8, {N, K / 2});
      q.scales = Tensor::empty(DType::U8, {N, K / 32});
      std::memset(q.scales.data<uint8_t>(), 120, size_t(N * K / 32));
      break;
    case QuantFormat::INT4: {
      q.params.blocksize = 128;
      q.data = Tensor::empty(DType::I32, {K / 8, N});
      q.scales = Tensor::empty(DType::F16, {K / 128, N});
      for (int64_t i = 0; i < K / 128 * N; ++i) q.scales.data<uint16_t>()[i] = 0x2000;
      q.zeros = Tensor::empty(DType::I32, {K / 128, (N + 7) / 8});
      q.g_idx = Tensor::empty(DType::I32, {K});
      for (int64_t k = 0; k < K; ++k) q.g_idx.data<int32_t>()[k] = int32_t(k / 128);
      break;
    }
    default: {
      const int64_t qk = f == QuantFormat::Q4_K ? 256 : 32, bb = f == QuantFormat::Q4_0 ? 18 : f == QuantFormat::Q8_0 ? 34 : 144;
      q.data = Tensor::empty(DType::U8, {N, K / qk * bb});
      break;
    }
  }
  fill_random(q.data);
  if (q.zeros.defined()) fill_random(q.zeros);
  if (f == QuantFormat::Q4_0 || f == QuantFormat::Q8_0 || f == QuantFormat::Q4_K) {
    const int64_t qk = f == QuantFormat::Q4_K ? 256 : 32, bb = f == QuantFormat::Q4_0 ? 18 : f == QuantFormat::Q8_0 ? 34 : 144;
    for (int64_t b = 0; b < N * K / qk; ++b) {
      uint16_t d = 0x2000;
      std::memcpy(q.data.data<uint8_t>() + b * bb, &d, 2);
      if (f == QuantFormat::Q4_K) std::memcpy(q.data.data<uint8_t>() + b * bb + 2, &d, 2);
    }
  }
  return q;
}

float median(std::vector<float> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false, no_prefill = false;
  std::string only, shape;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--quick") quick = true;
    else if (a == "--no-prefill") no_prefill = true;
    else if (a == "--only" && i + 1 < argc) only = argv[++i];
    else if (a == "--shape" && i + 1 < argc) shape = argv[++i];
    else { std::fprintf(stderr, "quant_gemv_bench: unknown argument %s\n", a.c_str()); return 2; }
  }
  cudaDeviceProp prop{};
  QF_CUDA(cudaGetDeviceProperties(&prop, 0));
  std::printf("device: %s, %d SMs, L2 %d MB\n", prop.name, prop.multiProcessorCount, prop.l2CacheSize >> 20);
  init_kernels(0);  // the backend's kernel settings (PDL, QFORGE_CUDA_GEMV1 for A/B runs)
  cudaStream_t stream;
  QF_CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);

  // Copy bandwidth (bytes read + written).
  float copy_gbs = 0;
  {
    const size_t bytes = size_t(1) << 30;
    void *a, *b;
    QF_CUDA(cudaMalloc(&a, bytes));
    QF_CUDA(cudaMalloc(&b, bytes));
    std::vector<float> t;
    for (int i = 0; i < 12; ++i) {
      cudaEventRecord(e0);
      cudaMemcpy(b, a, bytes, cudaMemcpyDeviceToDevice);
      cudaEventRecord(e1);
      cudaEventSynchronize(e1);
      float ms;
      cudaEventElapsedTime(&ms, e0, e1);
      if (i >= 2) t.push_back(ms);
    }
    copy_gbs = float(2.0 * bytes / (median(t) * 1e-3) / 1e9);
    std::printf("copy D2D: %.0f GB/s (read+write)\n", copy_gbs);
    cudaFree(a);
    cudaFree(b);
  }

  const std::vector<std::pair<int64_t, int64_t>> shapes = {
      {2048, 5632}, {5632, 2048}, {2048, 2048}, {4096, 14336}, {14336, 4096}, {128256, 4096}};
  const std::vector<QuantFormat> fmts = {QuantFormat::NF4,   QuantFormat::INT8,  QuantFormat::FP8_E4M3,
                                         QuantFormat::FP8_E5M2, QuantFormat::NVFP4, QuantFormat::MXFP4,
                                         QuantFormat::INT4,  QuantFormat::Q4_0,  QuantFormat::Q8_0,
                                         QuantFormat::Q4_K};
  const int kmax = 14336;
  std::vector<float> hx(size_t(8) * kmax);
  for (auto& v : hx) v = float(rng() % 1000) / 1000.f - 0.5f;
  float *dx, *dy;
  QF_CUDA(cudaMalloc(&dx, hx.size() * 4));
  QF_CUDA(cudaMalloc(&dy, size_t(8) * 128256 * 4));
  QF_CUDA(cudaMemcpy(dx, hx.data(), hx.size() * 4, cudaMemcpyHostToDevice));
  std::printf("%-9s %7s %6s %4s %9s %8s %7s\n", "format", "rows", "cols", "ntok", "us", "GB/s", "%copy");
  for (QuantFormat f : fmts)
    for (auto [N, K] : shapes) {
      if (quick && N == 128256 && f != QuantFormat::NF4 && f != QuantFormat::INT8 && f != QuantFormat::FP8_E4M3) continue;
      if (!only.empty() && only != quant_traits(f).name) continue;
      if (!shape.empty() && shape != std::to_string(N) + "x" + std::to_string(K)) continue;
      const QuantWeight q = synth(f, N, K);
      const int copies = N * K >= int64_t(256) << 20 ? 1 : 4;
      std::vector<std::shared_ptr<CudaQuantWeight>> ws;
      ws.push_back(upload_quant_weight(q, nullptr));
      for (int c = 1; c < copies; ++c) ws.push_back(clone_quant_weight(*ws[0], nullptr));
      const double bytes = double(device_bytes(*ws[0]));
      for (int ntok : {1, 8}) {
        LinearInputDev in;
        in.x = dx;
        // A CUDA graph of kRep GEMVs over the rotating copies (as decode replays its step graph), so
        // that host launch cost is not timed; warm-up call first (allocations, attributes).
        constexpr int kRep = 20;
        float* y = dy;
        auto gemv = [&](int i, cudaStream_t st) {
          const CudaQuantWeight* w = ws[size_t(i % copies)].get();
          quant_gemv(std::span<const CudaQuantWeight* const>(&w, 1), in, ntok, std::span<float* const>(&y, 1), false, st);
        };
        gemv(0, stream);
        QF_CUDA(cudaStreamSynchronize(stream));
        cudaGraph_t graph;
        cudaGraphExec_t exec;
        QF_CUDA(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
        for (int i = 0; i < kRep; ++i) gemv(i, stream);
        QF_CUDA(cudaStreamEndCapture(stream, &graph));
        QF_CUDA(cudaGraphInstantiate(&exec, graph, 0));
        std::vector<float> t;
        for (int i = 0; i < 55; ++i) {
          cudaEventRecord(e0, stream);
          QF_CUDA(cudaGraphLaunch(exec, stream));
          cudaEventRecord(e1, stream);
          cudaEventSynchronize(e1);
          float ms;
          cudaEventElapsedTime(&ms, e0, e1);
          if (i >= 5) t.push_back(ms / kRep);
        }
        cudaGraphExecDestroy(exec);
        cudaGraphDestroy(graph);
        const float ms = median(t);
        const float gbs = float(bytes / (ms * 1e-3) / 1e9);
        std::printf("%-9s %7lld %6lld %4d %9.1f %8.0f %6.1f%%\n", std::string(quant_traits(f).name).c_str(),
                    (long long)N, (long long)K, ntok, ms * 1e3, gbs, 100.f * gbs / copy_gbs);
      }
    }

  // Prefill: n = 2048 tokens through a 14336x4096 weight.
  if (!no_prefill) {
    cublasHandle_t h;
    cublasCreate(&h);
    const int64_t N = 14336, K = 4096, n = 2048;
    __nv_bfloat16 *wq, *xa;
    float *x, *y;
    QF_CUDA(cudaMalloc(&wq, size_t(N * K) * 2));
    QF_CUDA(cudaMalloc(&xa, size_t(n * K) * 2));
    QF_CUDA(cudaMalloc(&x, size_t(n * K) * 4));
    QF_CUDA(cudaMalloc(&y, size_t(n * N) * 4));
    QF_CUDA(cudaMemset(x, 0, size_t(n * K) * 4));
    CudaGemmContext ctx;  // as the backend sets it up (cuBLASLt + workspace: fp8 takes the FP8 tensor-core path)
    ctx.blas = h;
    ctx.dequant_scratch = wq;
    ctx.act_bf16_scratch = xa;
    cublasLtHandle_t lt;
    cublasLtCreate(&lt);
    ctx.lt = lt;
    ctx.workspace_bytes = size_t(32) << 20;
    QF_CUDA(cudaMalloc(&ctx.workspace, ctx.workspace_bytes));
    ctx.sm_major = prop.major;
    ctx.sm_minor = prop.minor;
    const double flops = 2.0 * N * K * n;
    auto time_it = [&](auto&& fn) {
      std::vector<float> t;
      for (int i = 0; i < 15; ++i) {
        cudaEventRecord(e0);
        fn();
        cudaEventRecord(e1);
        cudaEventSynchronize(e1);
        float ms;
        cudaEventElapsedTime(&ms, e0, e1);
        if (i >= 3) t.push_back(ms);
      }
      return median(t);
    };
    const float alpha = 1, beta = 0;
    const float ms_blas = time_it([&] {
      cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, int(N), int(n), int(K), &alpha, wq, CUDA_R_16BF, int(K), xa,
                   CUDA_R_16BF, int(K), &beta, y, CUDA_R_32F, int(N), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    });
    std::printf("prefill %lldx%lld n=%lld: cuBLAS bf16 GEMM alone %.3f ms = %.0f TFLOP/s\n", (long long)N,
                (long long)K, (long long)n, ms_blas, flops / (ms_blas * 1e-3) / 1e12);
    // The ceiling of a dequantizer's stores: writing the bf16 weight alone (memset).
    const float ms_set = time_it([&] { cudaMemsetAsync(wq, 0, size_t(N * K) * 2); });
    std::printf("prefill %lldx%lld bf16 written alone (memset) %.3f ms = %.0f GB/s\n", (long long)N, (long long)K,
                ms_set, double(N * K * 2) / (ms_set * 1e-3) / 1e9);
    for (QuantFormat f : fmts) {
      if (!only.empty() && only != quant_traits(f).name) continue;
      const QuantWeight q = synth(f, N, K);
      auto w = upload_quant_weight(q, nullptr);
      const float ms = time_it([&] { quant_gemm(*w, x, n, y, false, ctx, nullptr); });
      std::printf("prefill %-9s quant_gemm (dequant + x->bf16 + GEMM) %.3f ms = %.0f TFLOP/s\n",
                  std::string(quant_traits(f).name).c_str(), ms, flops / (ms * 1e-3) / 1e12);
      // The dequantize kernel alone (every format but fp8's tensor-core path runs it before the GEMM):
      // GB/s of device weight bytes read plus bf16 bytes written.
      const float ms_dq = time_it([&] { dequantize_to_bf16(*w, wq, nullptr); });
      std::printf("prefill %-9s dequantize alone %.3f ms = %.0f GB/s (weight read + bf16 written)\n",
                  std::string(quant_traits(f).name).c_str(), ms_dq,
                  double(upload_bytes(q) + size_t(N * K) * 2) / (ms_dq * 1e-3) / 1e9);
    }
    // cuBLASLt e4m3 x e4m3 GEMM alone (codes already row-major, activations already e4m3): the ceiling of
    // the FP8 path, by output type and accumulation mode.
    if (prop.major * 10 + prop.minor >= 89) {
      uint8_t *a8, *b8;
      QF_CUDA(cudaMalloc(&a8, size_t(N * K)));
      QF_CUDA(cudaMalloc(&b8, size_t(n * K)));
      QF_CUDA(cudaMemset(a8, 0x38, size_t(N * K)));
      QF_CUDA(cudaMemset(b8, 0x38, size_t(n * K)));
      for (int out16 = 0; out16 < 2; ++out16)
        for (int fast = 0; fast < 2; ++fast) {
          cublasLtMatmulDesc_t op;
          cublasLtMatrixLayout_t la, lb, lc;
          cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F);
          const cublasOperation_t tA = CUBLAS_OP_T, tB = CUBLAS_OP_N;
          cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &tA, sizeof(tA));
          cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &tB, sizeof(tB));
          const int8_t fa = int8_t(fast);
          cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_FAST_ACCUM, &fa, sizeof(fa));
          cublasLtMatrixLayoutCreate(&la, CUDA_R_8F_E4M3, uint64_t(K), uint64_t(N), K);
          cublasLtMatrixLayoutCreate(&lb, CUDA_R_8F_E4M3, uint64_t(K), uint64_t(n), K);
          cublasLtMatrixLayoutCreate(&lc, out16 ? CUDA_R_16BF : CUDA_R_32F, uint64_t(N), uint64_t(n), N);
          cublasLtMatmulPreference_t pref;
          cublasLtMatmulPreferenceCreate(&pref);
          cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ctx.workspace_bytes,
                                               sizeof(ctx.workspace_bytes));
          cublasLtMatmulHeuristicResult_t res{};
          int found = 0;
          cublasLtMatmulAlgoGetHeuristic(lt, op, la, lb, lc, lc, pref, 1, &res, &found);
          if (found) {
            const float ms8 = time_it([&] {
              cublasLtMatmul(lt, op, &alpha, a8, la, b8, lb, &beta, y, lc, y, lc, &res.algo, ctx.workspace,
                             ctx.workspace_bytes, nullptr);
            });
            std::printf("prefill cuBLASLt e4m3 GEMM alone, %s out, fast accumulate %s: %.3f ms = %.0f TFLOP/s\n",
                        out16 ? "bf16" : "f32", fast ? "on" : "off", ms8, flops / (ms8 * 1e-3) / 1e12);
          } else {
            std::printf("prefill cuBLASLt e4m3 GEMM, %s out, fast %d: no algorithm\n", out16 ? "bf16" : "f32", fast);
          }
          cublasLtMatmulPreferenceDestroy(pref);
          cublasLtMatrixLayoutDestroy(la);
          cublasLtMatrixLayoutDestroy(lb);
          cublasLtMatrixLayoutDestroy(lc);
          cublasLtMatmulDescDestroy(op);
        }
      cudaFree(a8);
      cudaFree(b8);
    }
    cublasLtDestroy(lt);
    cudaFree(ctx.workspace);
    cublasDestroy(h);
  }
  QF_CUDA(cudaDeviceSynchronize());
  return 0;
}
