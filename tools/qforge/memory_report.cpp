// tools/qforge/memory_report.cpp — see memory_report.h. Measured: bytes accounted by category
// (every qforge allocation is tagged), process RSS and its peak. Estimated: the same formulas
// `qforge mem` uses, for this model's config, format and KV capacity. Per GPU in use: the
// driver's free/total now and the free memory before loading (docs/cuda-backend.md).
#include "memory_report.h"

#include <set>
#include <sstream>

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

GpuMemoryBaseline gpu_memory_baseline(const std::string& device_option) {
  GpuMemoryBaseline b;
  std::set<int> devices;
  if (device_option == "auto") {
    for (const auto& g : list_gpus()) devices.insert(g.index);
  } else {
    std::stringstream ss(device_option);
    for (std::string d; std::getline(ss, d, ',');) {
      if (d == "cuda") devices.insert(0);
      else if (d.rfind("cuda:", 0) == 0 && d.size() > 5 && d.find_first_not_of("0123456789", 5) == std::string::npos)
        devices.insert(std::stoi(d.substr(5)));
    }
  }
  for (int d : devices)
    if (GpuMemoryInfo info; gpu_memory_info(d, info)) b.before[d] = info;
  return b;
}

namespace {
// One entry per GPU the model runs on: the driver's view (all processes) and, when there is a
// baseline, how much free memory loading (and running so far) took on it.
nlohmann::json gpus_json(const Model& m, const GpuMemoryBaseline& base) {
  std::set<int> used;
  for (const auto& p : m.placement()) {
    const std::string& d = p.device;
    if (d == "cuda") used.insert(0);
    else if (d.rfind("cuda:", 0) == 0) used.insert(std::stoi(d.substr(5)));
  }
  nlohmann::json a = nlohmann::json::array();
  for (int d : used) {
    GpuMemoryInfo now;
    if (!gpu_memory_info(d, now)) continue;
    nlohmann::json g{{"device", "cuda:" + std::to_string(d)},
                     {"driver_total_bytes", now.total_bytes},
                     {"driver_free_bytes", now.free_bytes},
                     {"driver_used_bytes", int64_t(now.total_bytes) - int64_t(now.free_bytes)}};
    if (auto it = base.before.find(d); it != base.before.end()) {
      g["driver_free_before_load_bytes"] = it->second.free_bytes;
      g["load_used_bytes"] = int64_t(it->second.free_bytes) - int64_t(now.free_bytes);
    }
    // qforge accounts every GPU under one counter: per GPU only when the model uses one.
    if (used.size() == 1) g["accounted_bytes"] = MemoryAccounting::device_total(MemDevice::Cuda0).current;
    a.push_back(g);
  }
  return a;
}
}  // namespace

nlohmann::json memory_json(const Model& m, const GpuMemoryBaseline& base) {
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
                 {"accounted_peak_bytes", gtot.peak}, {"accounted_bytes", gtot.current}};
  auto gpus = gpus_json(m, base);
  if (!gpus.empty()) j["gpus"] = gpus;
  return j;
}

void print_memory_report(const Model& m, std::FILE* out, const GpuMemoryBaseline& base) {
  auto j = memory_json(m, base);
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
  if (!j.contains("gpus")) return;
  for (const auto& g : j["gpus"]) {
    std::fprintf(out, "  %-14s driver: %.2f MiB free of %.2f MiB (%.2f MiB used, every process and CUDA context)\n",
                 g["device"].get<std::string>().c_str(), mib(g["driver_free_bytes"]), mib(g["driver_total_bytes"]),
                 mib(g["driver_used_bytes"]));
    std::string line = "                 this load: ";
    char buf[96];
    if (g.contains("load_used_bytes")) {
      std::snprintf(buf, sizeof buf, "%.2f MiB (free before load - free now)", mib(g["load_used_bytes"]));
      line += buf;
    } else {
      line += "n/a (no baseline)";
    }
    std::snprintf(buf, sizeof buf, "; qforge accounts %.2f MiB%s",
                  mib(g.contains("accounted_bytes") ? g["accounted_bytes"] : j["cuda"]["accounted_bytes"]),
                  g.contains("accounted_bytes") ? "" : " on all GPUs together");
    line += buf;
    std::fprintf(out, "%s\n", line.c_str());
  }
}

}  // namespace qforge::cli
