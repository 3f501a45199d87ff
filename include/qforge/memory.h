// qforge/memory.h — every byte qforge allocates is tagged by category and device, so that
// `--report-memory` can show measured memory beside the estimate (issue 5).
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

namespace qforge {

enum class MemCategory : uint8_t { Weights, KvCache, Scratch, Other, Count };
enum class MemDevice : uint8_t { Host, Cuda0, Count };

std::string_view mem_category_name(MemCategory c);

struct MemCounters {
  int64_t current = 0;
  int64_t peak = 0;
};

// Process-wide accounting (thread safe).
class MemoryAccounting {
 public:
  static void add(MemDevice d, MemCategory c, int64_t bytes);
  static MemCounters get(MemDevice d, MemCategory c);
  static MemCounters device_total(MemDevice d);  // peak of the sum over categories
  static void reset_peaks();
};

// Host allocation, 64-byte aligned (weights of 2 MiB and more: 2 MiB aligned, on transparent huge pages
// where the system offers them), zero-initialised only when asked, accounted under `cat`.
// Throws qforge::Error naming the size on out-of-memory.
std::shared_ptr<uint8_t> host_alloc(size_t bytes, MemCategory cat, bool zero = false);

// Resident set size of this process now and at its peak (from /proc/self/status), bytes.
int64_t process_rss_bytes();
int64_t process_peak_rss_bytes();

}  // namespace qforge
