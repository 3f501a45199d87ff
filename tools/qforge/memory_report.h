// tools/qforge/memory_report.h — measured memory of a loaded model: accounted bytes by category
// (weights, KV cache, scratch) and device, process RSS and peak, and for each GPU in use what the
// driver says (cudaMemGetInfo) beside qforge's own accounting, for --report-memory.
#pragma once
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "backends/gpu_info.h"
#include "qforge/model.h"

namespace qforge::cli {

// cudaMemGetInfo of every GPU a --device value may use, taken before loading the model (empty
// without GPUs). Taking it creates each GPU's CUDA context, so the context is not in the
// difference the report shows but is in the driver's "used" figure.
struct GpuMemoryBaseline {
  std::map<int, GpuMemoryInfo> before;  // by device index
};
GpuMemoryBaseline gpu_memory_baseline(const std::string& device_option);

nlohmann::json memory_json(const Model& m, const GpuMemoryBaseline& base = {});
void print_memory_report(const Model& m, std::FILE* out, const GpuMemoryBaseline& base = {});

}  // namespace qforge::cli
