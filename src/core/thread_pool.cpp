// core/thread_pool.cpp — see thread_pool.h.
#include "core/thread_pool.h"

#include <algorithm>
#include <memory>
#include <utility>

namespace qforge {

namespace {
std::unique_ptr<ThreadPool>& global_slot() {
  static std::unique_ptr<ThreadPool> p;
  return p;
}
int default_threads() { return std::max(1u, std::thread::hardware_concurrency()); }
}  // namespace

ThreadPool::ThreadPool(int n_threads) {
  n_threads = std::max(1, n_threads);
  for (int i = 1; i < n_threads; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::worker_loop(int) {
  uint64_t seen = 0;
  for (;;) {
    std::unique_lock lk(mu_);
    cv_.wait(lk, [&] { return stop_ || (generation_ != seen && next_chunk_ < n_chunks_); });
    if (stop_) return;
    seen = generation_;
    while (next_chunk_ < n_chunks_) {
      int64_t c = next_chunk_++;
      auto* job = job_;
      lk.unlock();
      try {
        (*job)(c * chunk_, std::min(n_, (c + 1) * chunk_));
      } catch (...) {
        std::lock_guard lk2(mu_);
        if (!error_) error_ = std::current_exception();
      }
      lk.lock();
      if (--pending_ == 0) done_cv_.notify_all();
    }
  }
}

void ThreadPool::parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  int64_t max_chunks = std::max<int64_t>(1, n / grain);
  int64_t chunks = std::min<int64_t>(max_chunks, int64_t(size()) * 4);
  if (workers_.empty() || chunks <= 1) {
    fn(0, n);
    return;
  }
  std::unique_lock lk(mu_);
  job_ = &fn;
  n_ = n;
  n_chunks_ = chunks;
  chunk_ = (n + chunks - 1) / chunks;
  n_chunks_ = (n + chunk_ - 1) / chunk_;
  next_chunk_ = 0;
  pending_ = n_chunks_;
  error_ = nullptr;
  ++generation_;
  cv_.notify_all();
  while (next_chunk_ < n_chunks_) {
    int64_t c = next_chunk_++;
    lk.unlock();
    try {
      fn(c * chunk_, std::min(n, (c + 1) * chunk_));
    } catch (...) {
      std::lock_guard lk2(mu_);
      if (!error_) error_ = std::current_exception();
    }
    lk.lock();
    --pending_;
  }
  done_cv_.wait(lk, [&] { return pending_ == 0; });
  job_ = nullptr;
  if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
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
