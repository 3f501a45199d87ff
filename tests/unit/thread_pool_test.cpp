// tests/unit/thread_pool_test.cpp — parallel_for covers every index exactly once, for many
// back-to-back jobs (the lock-free hand-off between generations), and propagates exceptions.
#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>

#include "core/thread_pool.h"

using namespace qforge;

TEST(ThreadPool, EveryIndexOnceAcrossManyJobs) {
  for (int threads : {1, 2, 3, 5}) {
    ThreadPool pool(threads);
    std::vector<std::atomic<int>> hits(1000);
    for (int job = 0; job < 2000; ++job) {
      int64_t n = 1 + (job * 37) % 1000;
      pool.parallel_for(n, 1 + job % 7, [&](int64_t a, int64_t b) {
        for (int64_t i = a; i < b; ++i) hits[size_t(i)].fetch_add(1);
      });
      for (int64_t i = 0; i < 1000; ++i) ASSERT_EQ(hits[size_t(i)].exchange(0), i < n ? 1 : 0) << "job " << job;
    }
  }
}

TEST(ThreadPool, ExceptionsReachTheCaller) {
  ThreadPool pool(3);
  EXPECT_THROW(pool.parallel_for(100, 1, [](int64_t a, int64_t) {
    if (a >= 50) throw std::runtime_error("boom");
  }), std::runtime_error);
  std::atomic<int64_t> sum{0};  // the pool still works afterwards
  pool.parallel_for(100, 1, [&](int64_t a, int64_t b) { sum += b - a; });
  EXPECT_EQ(sum.load(), 100);
}

TEST(ThreadPool, NestedCallsRunInline) {
  ThreadPool pool(2);
  std::atomic<int64_t> sum{0};
  pool.parallel_for(8, 1, [&](int64_t a, int64_t b) {
    for (int64_t i = a; i < b; ++i)
      pool.parallel_for(100, 1, [&](int64_t c, int64_t d) { sum += d - c; });
  });
  EXPECT_EQ(sum.load(), 800);
}
