// tools/qforge/memory_report.cpp — see memory_report.h.
#include "memory_report.h"

#include "qforge/memory.h"

namespace qforge::cli {

nlohmann::json memory_json(const Model& m) {
  auto w = MemoryAccounting::get(MemDevice::Host, MemCategory::Weights);
  auto kv = MemoryAccounting::get(MemDevice::Host, MemCategory::KvCache);
  auto sc = MemoryAccounting::get(MemDevice::Host, MemCategory::Scratch);
  auto tot = MemoryAccounting::device_total(MemDevice::Host);
  return {{"weights_bytes", w.current},         {"kv_cache_bytes", kv.current},
          {"scratch_bytes", sc.peak},           {"peak_bytes", tot.peak},
          {"model_weight_bytes", m.weight_bytes()}, {"rss_bytes", process_rss_bytes()},
          {"peak_rss_bytes", process_peak_rss_bytes()}, {"device", "host"}};
}

void print_memory_report(const Model& m, std::FILE* out) {
  auto j = memory_json(m);
  auto mib = [](int64_t b) { return double(b) / (1024.0 * 1024.0); };
  std::fprintf(out, "memory (host, measured):\n");
  std::fprintf(out, "  weights   %10.2f MiB\n", mib(j["weights_bytes"].get<int64_t>()));
  std::fprintf(out, "  kv cache  %10.2f MiB\n", mib(j["kv_cache_bytes"].get<int64_t>()));
  std::fprintf(out, "  scratch   %10.2f MiB (peak)\n", mib(j["scratch_bytes"].get<int64_t>()));
  std::fprintf(out, "  accounted %10.2f MiB (peak)\n", mib(j["peak_bytes"].get<int64_t>()));
  std::fprintf(out, "  RSS       %10.2f MiB now, %.2f MiB peak\n", mib(j["rss_bytes"].get<int64_t>()),
               mib(j["peak_rss_bytes"].get<int64_t>()));
}

}  // namespace qforge::cli
