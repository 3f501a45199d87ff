// benches/quant_linear_bench.cpp — throughput of quant_linear_cpu per format: 2048x5632 and 5632x2048
// weights, 1 and 2 threads, n_tokens 1 (GEMV, GB/s of weight bytes) and 64 (prefill, GFLOP/s as well),
// for each ISA level / activation mode the CPU has. Best of `reps` timed windows (the box is shared).
// --stream: the GEMV cycles through copies of the weight totalling >= 256 MB, so the bytes come from
// DRAM as in a model's decode step (without it a 6-12 MB weight sits in the L2/L3 caches).
// --decode-only: skip the n_tokens = 64 columns. Rows: f32 / int8 activations at the chosen ISA, and "auto",
// quant_linear_cpu's own dispatch (K-quant prefill: AMX or AVX-512 int8, kquant_int8.h). Not built by default:
//   g++ -O2 -std=c++20 -Iinclude -Isrc benches/quant_linear_bench.cpp build/libqforge.a -lpthread -o /tmp/qlb
//   /tmp/qlb [format,...] [--isa avx2|avx512|scalar] [--reps N] [--stream] [--decode-only]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "backends/cpu/quant_linear_kernels.h"
#include "backends/quant_linear.h"
#include "core/thread_pool.h"

using namespace qforge;
using cpu_quant::ActMode;
using cpu_quant::Isa;

namespace {
Tensor deep_copy(const Tensor& t) {
  if (!t.defined()) return {};
  Tensor c = Tensor::empty(t.dtype(), t.shape());
  if (t.nbytes()) std::memcpy(c.raw(), t.raw(), t.nbytes());
  return c;
}

QuantWeight deep_copy(const QuantWeight& q) {
  QuantWeight c = q;
  c.data = deep_copy(q.data);
  c.scales = deep_copy(q.scales);
  c.scales2 = deep_copy(q.scales2);
  c.zeros = deep_copy(q.zeros);
  c.g_idx = deep_copy(q.g_idx);
  return c;
}

double time_best(const std::function<void()>& fn, int reps) {
  fn();  // warm up
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    int iters = 0;
    const auto t0 = std::chrono::steady_clock::now();
    double el = 0;
    do {
      fn();
      ++iters;
      el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    } while (el < 0.25);
    best = std::min(best, el / iters);
  }
  return best;
}
}  // namespace

int main(int argc, char** argv) {
  std::string only;
  Isa isa = cpu_quant::best_isa();
  int reps = 3;
  bool stream = false, decode_only = false;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--isa") && i + 1 < argc) {
      std::string v = argv[++i];
      isa = v == "avx512" ? Isa::Avx512 : v == "avx2" ? Isa::Avx2 : Isa::Scalar;
    } else if (!std::strcmp(argv[i], "--stream")) {
      stream = true;
    } else if (!std::strcmp(argv[i], "--decode-only")) {
      decode_only = true;
    } else if (!std::strcmp(argv[i], "--reps") && i + 1 < argc) {
      reps = std::atoi(argv[++i]);
    } else {
      only = "," + std::string(argv[i]) + ",";
    }
  }
  std::printf("isa %s\n%-9s %-5s %-11s %6s %9s %9s %9s %9s\n", std::string(cpu_quant::isa_name(isa)).c_str(), "format",
              "act", "shape", "MiB", "n1 1t", "n1 2t", "n64 1t", "n64 2t");
  std::printf("%-9s %-5s %-11s %6s %9s %9s %9s %9s\n", "", "", "", "", "GB/s", "GB/s", "GFLOP/s", "GFLOP/s");
  for (auto [N, K] : {std::pair<int64_t, int64_t>{2048, 5632}, {5632, 2048}}) {
    Tensor w = Tensor::empty(DType::F32, {N, K});
    std::mt19937 rng(1);
    std::normal_distribution<float> d(0.0f, 0.02f);
    for (int64_t i = 0; i < N * K; ++i) w.data<float>()[i] = d(rng);
    std::vector<float> x(size_t(64 * K)), y(size_t(64 * N));
    for (auto& v : x) v = d(rng);
    for (const auto& t : quant_formats()) {
      if (!only.empty() && only.find("," + std::string(t.name) + ",") == std::string::npos) continue;
      const QuantWeight q = quantize_weight(w, t.format, {});
      std::vector<QuantWeight> copies{q};
      if (stream)
        while (copies.size() * q.storage_bytes() < (size_t(256) << 20)) copies.push_back(deep_copy(q));
      size_t next = 0;
      for (int mode : {0, 1, 2}) {  // f32, int8 activations, quant_linear_cpu's own choice ("auto")
        const ActMode act = mode == 1 ? ActMode::Int8 : ActMode::F32;
        if (act == ActMode::Int8 && !cpu_quant::int8_act_supported(t.format, isa)) continue;
        double r[4];
        int i = 0;
        for (int64_t nt : {1, 64})
          for (int th : {1, 2}) {
            if (nt == 64 && decode_only) {
              r[i++] = 0;
              continue;
            }
            ThreadPool::set_global_threads(th);
            const double s = time_best(
                [&] {
                  const QuantWeight& qc = nt == 1 ? copies[next++ % copies.size()] : q;
                  if (mode == 2) quant_linear_cpu(qc, x.data(), nt, y.data());
                  else cpu_quant::quant_linear_cpu_isa(qc, x.data(), nt, y.data(), isa, act);
                },
                nt == 1 ? reps : 1);
            r[i++] = nt == 1 ? double(q.storage_bytes()) / s / 1e9 : 2.0 * double(N * K) * nt / s / 1e9;
          }
        std::printf("%-9s %-5s %5ldx%-5ld %6.2f %9.2f %9.2f %9.1f %9.1f\n", std::string(t.name).c_str(),
                    mode == 2 ? "auto" : act == ActMode::Int8 ? "int8" : "f32", long(N), long(K), q.storage_bytes() / 1048576.0, r[0], r[1],
                    r[2], r[3]);
        std::fflush(stdout);
      }
    }
  }
  return 0;
}
