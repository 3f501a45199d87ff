// core/thread_pool.h — a fixed pool of worker threads with a blocking parallel_for, used by the
// optimised CPU backend. One global pool sized by --threads (default: all cores). A decode step
// issues ~150 parallel_for calls, so waking workers must cost microseconds: idle workers spin
// briefly on an atomic before sleeping, and chunks are claimed lock-free.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace qforge {

class ThreadPool {
 public:
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return int(workers_.size()) + 1; }
  // Runs fn(begin, end) over [0, n) split into contiguous chunks of at least `grain`; the calling
  // thread takes part. Returns when all chunks are done. Exceptions are rethrown in the caller.
  // Call it from one thread at a time (the engine's thread); a call nested inside a chunk runs
  // inline on the calling thread.
  void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

  static ThreadPool& global();
  static void set_global_threads(int n);  // 0 = hardware concurrency

 private:
  struct Job {
    const std::function<void(int64_t, int64_t)>* fn = nullptr;
    int64_t n = 0, chunk = 0;
  };
  void worker_loop();
  bool run_one(uint32_t gen);  // claim and run one chunk of job `gen`; false when none is left

  std::vector<std::thread> workers_;
  Job slots_[2];                      // job of generation g lives in slots_[g & 1]
  std::atomic<uint64_t> ticket_{0};   // generation << 32 | chunk count << 16 | next chunk
  std::atomic<uint32_t> gen_{0};      // the newest published generation
  std::atomic<int64_t> pending_{0};   // chunks of the current job not yet finished
  std::atomic<int> sleepers_{0};
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  std::exception_ptr error_;  // guarded by mu_
};

}  // namespace qforge
