// engine/bandwidth.cpp — host read bandwidth: every pool thread sums its slice of a buffer much
// larger than the caches; the best of several passes is reported.
#include "qforge/bandwidth.h"

#include <atomic>
#include <chrono>
#include <cstring>

#include "core/thread_pool.h"
#include "qforge/memory.h"

namespace qforge {

double measure_host_read_bandwidth(size_t bytes, int repeats) {
  auto buf = host_alloc(bytes, MemCategory::Scratch);
  auto* p = reinterpret_cast<uint64_t*>(buf.get());
  const int64_t n = int64_t(bytes / 8);
  ThreadPool& pool = ThreadPool::global();
  pool.parallel_for(n, 1 << 16, [&](int64_t a, int64_t b) {
    for (int64_t i = a; i < b; ++i) p[i] = uint64_t(i);
  });
  double best = 0;
  std::atomic<uint64_t> sink{0};
  for (int r = 0; r < repeats; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    pool.parallel_for(n, 1 << 18, [&](int64_t a, int64_t b) {
      uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      int64_t i = a;
      for (; i + 4 <= b; i += 4) {
        s0 += p[i];
        s1 += p[i + 1];
        s2 += p[i + 2];
        s3 += p[i + 3];
      }
      for (; i < b; ++i) s0 += p[i];
      sink += s0 + s1 + s2 + s3;
    });
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, double(bytes) / s / 1e9);
  }
  return sink.load() == 42 ? best * 1.0000001 : best;  // keep the sums observable
}

}  // namespace qforge
