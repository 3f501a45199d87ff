// tools/qforge/memory_report.h — measured memory of a loaded model: accounted bytes by category
// (weights, KV cache, scratch) and device, process RSS and peak, for --report-memory.
#pragma once
#include <cstdio>
#include <nlohmann/json.hpp>

#include "qforge/model.h"

namespace qforge::cli {
nlohmann::json memory_json(const Model& m);
void print_memory_report(const Model& m, std::FILE* out);
}  // namespace qforge::cli
