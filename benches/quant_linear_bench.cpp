// benches/quant_linear_bench.cpp — GEMV throughput of quant_linear_cpu per format on a 2048 x 5632 weight,
// single-thread and 2-thread, reported as GB/s of weight bytes (storage_bytes / time). Not built by
// default: g++ -O2 -std=c++20 -Iinclude -Isrc benches/quant_linear_bench.cpp build/libqforge.a -lpthread
#include <chrono>
#include <cstdio>
#include <random>
#include <vector>

#include "backends/quant_linear.h"
#include "core/thread_pool.h"

using namespace qforge;

int main() {
  const int64_t N = 2048, K = 5632;
  Tensor w = Tensor::empty(DType::F32, {N, K});
  std::mt19937 rng(1);
  std::normal_distribution<float> d(0.0f, 0.02f);
  for (int64_t i = 0; i < N * K; ++i) w.data<float>()[i] = d(rng);
  std::vector<float> x(K), y(N);
  for (auto& v : x) v = d(rng);
  std::printf("%-10s %10s %12s %12s\n", "format", "MiB", "1 thr GB/s", "2 thr GB/s");
  for (const auto& t : quant_formats()) {
    const QuantWeight q = quantize_weight(w, t.format, {});
    double gbs[2];
    for (int th : {1, 2}) {
      ThreadPool::set_global_threads(th);
      quant_linear_cpu(q, x.data(), 1, y.data());  // warm up
      int iters = 0;
      const auto t0 = std::chrono::steady_clock::now();
      double el = 0;
      do {
        quant_linear_cpu(q, x.data(), 1, y.data());
        ++iters;
        el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      } while (el < 0.5);
      gbs[th - 1] = double(q.storage_bytes()) * iters / el / 1e9;
    }
    std::printf("%-10s %10.2f %12.2f %12.2f\n", std::string(t.name).c_str(), q.storage_bytes() / 1048576.0, gbs[0], gbs[1]);
  }
  return 0;
}
