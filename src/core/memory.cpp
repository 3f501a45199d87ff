// core/memory.cpp — tagged allocation accounting (per device and category, with peaks), host
// allocation (weights on transparent huge pages where the kernel offers them) and the process RSS
// readings that `--report-memory` compares against.
#include "qforge/memory.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <new>
#include <string>

#include <sys/mman.h>

#include "qforge/status.h"

namespace qforge {

namespace {
struct Table {
  std::mutex mu;
  MemCounters cat[size_t(MemDevice::Count)][size_t(MemCategory::Count)];
  MemCounters total[size_t(MemDevice::Count)];
};
Table& table() {
  static Table t;
  return t;
}

int64_t read_status_kb(const char* key) {
  std::ifstream f("/proc/self/status");
  std::string line;
  size_t kl = std::strlen(key);
  while (std::getline(f, line))
    if (line.compare(0, kl, key) == 0) return std::atoll(line.c_str() + kl + 1) * 1024;
  return 0;
}
}  // namespace

std::string_view mem_category_name(MemCategory c) {
  switch (c) {
    case MemCategory::Weights: return "weights";
    case MemCategory::KvCache: return "kv_cache";
    case MemCategory::Scratch: return "scratch";
    default: return "other";
  }
}

void MemoryAccounting::add(MemDevice d, MemCategory c, int64_t bytes) {
  auto& t = table();
  std::lock_guard lk(t.mu);
  auto& m = t.cat[size_t(d)][size_t(c)];
  m.current += bytes;
  if (m.current > m.peak) m.peak = m.current;
  auto& tot = t.total[size_t(d)];
  tot.current += bytes;
  if (tot.current > tot.peak) tot.peak = tot.current;
}

MemCounters MemoryAccounting::get(MemDevice d, MemCategory c) {
  auto& t = table();
  std::lock_guard lk(t.mu);
  return t.cat[size_t(d)][size_t(c)];
}

MemCounters MemoryAccounting::device_total(MemDevice d) {
  auto& t = table();
  std::lock_guard lk(t.mu);
  return t.total[size_t(d)];
}

void MemoryAccounting::reset_peaks() {
  auto& t = table();
  std::lock_guard lk(t.mu);
  for (auto& dev : t.cat)
    for (auto& m : dev) m.peak = m.current;
  for (auto& m : t.total) m.peak = m.current;
}

namespace {
constexpr size_t kHugePage = size_t(2) << 20;

// Weights of 2 MiB and more start on a 2 MiB boundary and ask for transparent huge pages over their
// whole 2 MiB pages (the tail stays in 4 KiB pages, so the resident size does not grow). Decode streams
// every weight each token: with 4 KiB pages the hardware prefetcher stops at each page and every page
// costs a TLB miss, and loading faults in 512 times as many pages (docs/perf-notes.md). Where THP is
// off ("never") the advice does nothing. QFORGE_HUGE_PAGES=0 turns it off.
bool huge_pages_for(MemCategory cat, size_t bytes) {
  static const bool on = [] {
    const char* e = std::getenv("QFORGE_HUGE_PAGES");
    return !(e && std::strcmp(e, "0") == 0);
  }();
  return on && cat == MemCategory::Weights && bytes >= kHugePage;
}
}  // namespace

std::shared_ptr<uint8_t> host_alloc(size_t bytes, MemCategory cat, bool zero) {
  size_t rounded = (bytes + 63) / 64 * 64;
  if (rounded == 0) rounded = 64;
  const bool huge = huge_pages_for(cat, rounded);
  // aligned_alloc wants a size in whole alignments; the bytes past `rounded` are never touched.
  void* p = huge ? std::aligned_alloc(kHugePage, (rounded + kHugePage - 1) / kHugePage * kHugePage)
                 : std::aligned_alloc(64, rounded);
  if (p && huge) (void)madvise(p, rounded / kHugePage * kHugePage, MADV_HUGEPAGE);  // advice: failure is harmless
  if (!p)
    throw Error("out of host memory: could not allocate " + std::to_string(bytes) + " bytes for " +
                std::string(mem_category_name(cat)));
  if (zero) std::memset(p, 0, rounded);
  MemoryAccounting::add(MemDevice::Host, cat, int64_t(bytes));
  return std::shared_ptr<uint8_t>(static_cast<uint8_t*>(p), [bytes, cat](uint8_t* q) {
    std::free(q);
    MemoryAccounting::add(MemDevice::Host, cat, -int64_t(bytes));
  });
}

int64_t process_rss_bytes() { return read_status_kb("VmRSS:"); }
int64_t process_peak_rss_bytes() { return read_status_kb("VmHWM:"); }

}  // namespace qforge
