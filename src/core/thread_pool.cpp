// core/thread_pool.cpp — see thread_pool.h. Correctness of the lock-free hand-off: a job's slot
// is read only after a successful claim (CAS on ticket_ with the job's generation), and the slot
// is rewritten two generations later, after every claimed chunk has finished (pending_ == 0).
#include "core/thread_pool.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <utility>

#if defined(__x86_64__)
#include <immintrin.h>
#define QF_CPU_RELAX() _mm_pause()
#else
#define QF_CPU_RELAX() ((void)0)
#endif

namespace qforge {

namespace {
std::unique_ptr<ThreadPool>& global_slot() {
  static std::unique_ptr<ThreadPool> p;
  return p;
}
int default_threads() { return int(std::max(1u, std::thread::hardware_concurrency())); }
constexpr uint64_t pack(uint32_t gen, uint64_t chunks, uint64_t next) { return uint64_t(gen) << 32 | chunks << 16 | next; }
constexpr auto kSpin = std::chrono::microseconds(200);  // idle spin before sleeping
// True while this thread runs a chunk: a parallel_for issued from inside a chunk (nested
// parallelism) runs inline instead of waiting on the pool it is part of.
thread_local bool t_in_chunk = false;
}  // namespace

ThreadPool::ThreadPool(int n_threads) {
  n_threads = std::max(1, n_threads);
  for (int i = 1; i < n_threads; ++i) workers_.emplace_back([this] { worker_loop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard lk(mu_);
    stop_.store(true);
  }
  cv_.notify_all();
  for (auto& t : workers_) t.join();
}

bool ThreadPool::run_one(uint32_t gen) {
  uint64_t v = ticket_.load(std::memory_order_acquire);
  for (;;) {
    if (uint32_t(v >> 32) != gen) return false;
    uint64_t chunks = (v >> 16) & 0xffff, next = v & 0xffff;
    if (next >= chunks) return false;
    if (ticket_.compare_exchange_weak(v, v + 1, std::memory_order_acq_rel, std::memory_order_acquire)) {
      const Job& job = slots_[gen & 1];
      t_in_chunk = true;
      try {
        (*job.fn)(int64_t(next) * job.chunk, std::min(job.n, int64_t(next + 1) * job.chunk));
        t_in_chunk = false;
      } catch (...) {
        t_in_chunk = false;
        std::lock_guard lk(mu_);
        if (!error_) error_ = std::current_exception();
      }
      pending_.fetch_sub(1, std::memory_order_acq_rel);
      return true;
    }
  }
}

void ThreadPool::worker_loop() {
  uint32_t seen = 0;
  for (;;) {
    auto spin_start = std::chrono::steady_clock::now();
    uint32_t g;
    int polls = 0;
    while ((g = gen_.load(std::memory_order_acquire)) == seen) {
      if (stop_.load(std::memory_order_relaxed)) return;
      QF_CPU_RELAX();
      if (++polls % 64 == 0 && std::chrono::steady_clock::now() - spin_start > kSpin) {
        std::unique_lock lk(mu_);
        sleepers_.fetch_add(1);
        cv_.wait(lk, [&] { return stop_.load() || gen_.load() != seen; });
        sleepers_.fetch_sub(1);
        if (stop_.load()) return;
        spin_start = std::chrono::steady_clock::now();
      }
    }
    seen = g;
    while (run_one(g)) {
    }
  }
}

void ThreadPool::parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  int64_t chunks = std::min<int64_t>(std::max<int64_t>(1, n / grain), int64_t(size()) * 4);
  if (workers_.empty() || chunks <= 1 || t_in_chunk) {
    fn(0, n);
    return;
  }
  const int64_t chunk = (n + chunks - 1) / chunks;
  chunks = (n + chunk - 1) / chunk;
  const uint32_t g = gen_.load(std::memory_order_relaxed) + 1;
  slots_[g & 1] = Job{&fn, n, chunk};
  pending_.store(chunks, std::memory_order_relaxed);
  ticket_.store(pack(g, uint64_t(chunks), 0), std::memory_order_release);
  gen_.store(g, std::memory_order_release);
  if (sleepers_.load() > 0) {
    std::lock_guard lk(mu_);
    cv_.notify_all();
  }
  while (run_one(g)) {
  }
  while (pending_.load(std::memory_order_acquire) != 0) QF_CPU_RELAX();
  std::exception_ptr e;
  {
    std::lock_guard lk(mu_);
    e = std::exchange(error_, nullptr);
  }
  if (e) std::rethrow_exception(e);
}

ThreadPool& ThreadPool::global() {
  auto& p = global_slot();
  if (!p) p = std::make_unique<ThreadPool>(default_threads());
  return *p;
}

void ThreadPool::set_global_threads(int n) {
  auto& p = global_slot();
  int want = n > 0 ? n : default_threads();
  if (!p || p->size() != want) p = std::make_unique<ThreadPool>(want);
}

}  // namespace qforge
