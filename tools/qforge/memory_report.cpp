// tools/qforge/memory_report.cpp — see memory_report.h. Measured: bytes accounted by category
// (every qforge allocation is tagged), process RSS and its peak. Estimated: the same formulas
// `qforge mem` uses, for this model's config, format and KV capacity.
#include "memory_report.h"

#include "qforge/memory.h"
#include "qforge/memory_estimate.h"
#include "qforge/status.h"

namespace qforge::cli {

namespace {
struct Estimate {
  int64_t weights = 0, kv = 0;
};

Estimate estimate_for(const Model& m) {
  const auto& c = m.config();
  WeightScheme scheme;
  if (m.quant_format() == QuantFormat::None) {
    scheme.format = QuantFormat::None;
    scheme.dtype = m.weight_dtype();
  } else {
    scheme.format = m.quant_format();
    scheme.params = m.quant_params();
  }
  Estimate e;
  e.weights = weights_bytes(c, scheme, m.weight_dtype());
  // The engine keeps its KV cache in f32 for the positions reserved so far.
  e.kv = m.kv_capacity() > 0 ? kv_cache_bytes(c, m.kv_capacity(), 1, DType::F32) : 0;
  return e;
}
}  // namespace

nlohmann::json memory_json(const Model& m) {
  auto w = MemoryAccounting::get(MemDevice::Host, MemCategory::Weights);
  auto kv = MemoryAccounting::get(MemDevice::Host, MemCategory::KvCache);
  auto sc = MemoryAccounting::get(MemDevice::Host, MemCategory::Scratch);
  auto tot = MemoryAccounting::device_total(MemDevice::Host);
  auto gw = MemoryAccounting::get(MemDevice::Cuda0, MemCategory::Weights);
  auto gkv = MemoryAccounting::get(MemDevice::Cuda0, MemCategory::KvCache);
  auto gsc = MemoryAccounting::get(MemDevice::Cuda0, MemCategory::Scratch);
  auto gtot = MemoryAccounting::device_total(MemDevice::Cuda0);
  Estimate e = estimate_for(m);
  const bool gpu = gtot.peak > 0;
  // Headline numbers are those of the device holding the model.
  nlohmann::json j{{"weights_bytes", gpu ? gw.current : w.current},
                   {"kv_cache_bytes", gpu ? gkv.current : kv.current},
                   {"scratch_bytes", gpu ? gsc.peak : sc.peak},
                   {"peak_bytes", gpu ? gtot.peak : tot.peak},
                   {"device", gpu ? "cuda:0" : "host"},
                   {"model_weight_bytes", m.weight_bytes()},
                   {"estimated_weights_bytes", e.weights},
                   {"estimated_kv_cache_bytes", e.kv},
                   {"load_peak_bytes", m.load_peak_bytes()},
                   {"streaming_bound_bytes", m.streaming_bound_bytes()},
                   {"host", {{"weights_bytes", w.current}, {"kv_cache_bytes", kv.current}, {"scratch_peak_bytes", sc.peak},
                             {"accounted_peak_bytes", tot.peak}, {"rss_bytes", process_rss_bytes()},
                             {"peak_rss_bytes", process_peak_rss_bytes()}}}};
  if (gpu)
    j["cuda"] = {{"weights_bytes", gw.current}, {"kv_cache_bytes", gkv.current}, {"scratch_peak_bytes", gsc.peak},
                 {"accounted_peak_bytes", gtot.peak}};
  return j;
}

void print_memory_report(const Model& m, std::FILE* out) {
  auto j = memory_json(m);
  auto mib = [](const nlohmann::json& b) { return double(b.get<int64_t>()) / (1024.0 * 1024.0); };
  auto pct = [](const nlohmann::json& a, const nlohmann::json& b) {
    double e = double(b.get<int64_t>());
    return e > 0 ? 100.0 * (double(a.get<int64_t>()) - e) / e : 0.0;
  };
  std::fprintf(out, "memory on %s        measured      estimated\n", j["device"].get<std::string>().c_str());
  std::fprintf(out, "  weights        %10.2f MiB  %10.2f MiB (%+.2f%%)\n", mib(j["weights_bytes"]),
               mib(j["estimated_weights_bytes"]), pct(j["weights_bytes"], j["estimated_weights_bytes"]));
  std::fprintf(out, "  kv cache       %10.2f MiB  %10.2f MiB\n", mib(j["kv_cache_bytes"]), mib(j["estimated_kv_cache_bytes"]));
  std::fprintf(out, "  scratch (peak) %10.2f MiB\n", mib(j["scratch_bytes"]));
  std::fprintf(out, "  accounted peak %10.2f MiB\n", mib(j["peak_bytes"]));
  std::fprintf(out, "  load peak      %10.2f MiB (streaming bound: weights + one f32 tensor = %.2f MiB)\n",
               mib(j["load_peak_bytes"]), mib(j["streaming_bound_bytes"]));
  std::fprintf(out, "  host RSS       %10.2f MiB now, %.2f MiB peak\n", mib(j["host"]["rss_bytes"]),
               mib(j["host"]["peak_rss_bytes"]));
}

}  // namespace qforge::cli
