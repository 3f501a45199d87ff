// tools/qforge/cmd_info.cpp — `qforge info`: version, build options, CPU features, threads,
// available backends (and GPUs once the CUDA backend is built in), optional bandwidth probe.
#include <fstream>
#include <thread>

#include "backends/backend.h"
#include "backends/cpu/cpu_kernels.h"
#include "backends/gpu_info.h"
#include "command.h"
#include "qforge/bandwidth.h"

namespace qforge::cli {
namespace {

std::string cpu_model_name() {
  std::ifstream f("/proc/cpuinfo");
  for (std::string line; std::getline(f, line);)
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown";
}

nlohmann::json cpu_features() {
  __builtin_cpu_init();
  nlohmann::json j;
  j["sse4_2"] = bool(__builtin_cpu_supports("sse4.2"));
  j["avx"] = bool(__builtin_cpu_supports("avx"));
  j["avx2"] = bool(__builtin_cpu_supports("avx2"));
  j["fma"] = bool(__builtin_cpu_supports("fma"));
  j["f16c"] = bool(__builtin_cpu_supports("f16c"));
  j["avx512f"] = bool(__builtin_cpu_supports("avx512f"));
  j["avx512bw"] = bool(__builtin_cpu_supports("avx512bw"));
  j["avx512_bf16"] = bool(__builtin_cpu_supports("avx512bf16"));
  j["avx512_vnni"] = bool(__builtin_cpu_supports("avx512vnni"));
  return j;
}

Registrar reg("info", "Show version, build options, CPU features, threads and devices", [](CLI::App& app) {
  auto json = std::make_shared<bool>(false);
  auto bw = std::make_shared<bool>(false);
  app.add_flag("--json", *json, "Print one JSON object");
  app.add_flag("--bandwidth", *bw, "Measure memory bandwidth (takes a few seconds)");
  return [json, bw]() -> int {
    nlohmann::json j;
    j["version"] = QFORGE_VERSION_STRING;
    const auto backends = available_backends();
    j["build"] = {{"compiler", __VERSION__}, {"cuda", cuda_backend_built()}};
    j["cpu"] = {{"model", cpu_model_name()},
                {"features", cpu_features()},
                {"simd_kernels", cpu::cpu_has_avx2() ? "avx2+fma+f16c" : "scalar"},
                {"threads", std::thread::hardware_concurrency()}};
    j["backends"] = available_backends();
    if (*bw) j["host_read_bandwidth_gb_per_s"] = measure_host_read_bandwidth();
    j["gpus"] = nlohmann::json::array();
    for (const auto& g : list_gpus()) {
      nlohmann::json gj{{"index", g.index},
                        {"name", g.name},
                        {"compute_capability", std::to_string(g.cc_major) + "." + std::to_string(g.cc_minor)},
                        {"memory_bytes", g.total_bytes},
                        {"free_bytes", g.free_bytes},
                        {"multiprocessors", g.multiprocessors},
                        {"native_formats", g.native_formats}};
      if (*bw) gj["copy_bandwidth_gb_per_s"] = measure_gpu_copy_bandwidth(g.index);
      j["gpus"].push_back(gj);
    }
    if (*json) {
      print_json(j);
      return 0;
    }
    std::printf("qforge %s (%s)\n", QFORGE_VERSION_STRING, __VERSION__);
    std::printf("cpu: %s, %u threads, kernels: %s\n", j["cpu"]["model"].get<std::string>().c_str(),
                std::thread::hardware_concurrency(), j["cpu"]["simd_kernels"].get<std::string>().c_str());
    std::printf("cpu features:");
    for (auto& [k, v] : j["cpu"]["features"].items())
      if (v.get<bool>()) std::printf(" %s", k.c_str());
    std::printf("\nbackends:");
    for (auto& b : j["backends"]) std::printf(" %s", b.get<std::string>().c_str());
    std::printf("\n");
    if (*bw) std::printf("host read bandwidth: %.1f GB/s\n", j["host_read_bandwidth_gb_per_s"].get<double>());
    if (j["gpus"].empty()) std::printf("gpus: none (%s)\n", j["build"]["cuda"].get<bool>() ? "no usable CUDA device" : "CPU-only build");
    for (const auto& g : j["gpus"]) {
      std::printf("gpu %d: %s, compute capability %s, %.1f GiB (%.1f GiB free), %d SMs; native:", g["index"].get<int>(),
                  g["name"].get<std::string>().c_str(), g["compute_capability"].get<std::string>().c_str(),
                  double(g["memory_bytes"].get<size_t>()) / (1 << 30), double(g["free_bytes"].get<size_t>()) / (1 << 30),
                  g["multiprocessors"].get<int>());
      for (const auto& f : g["native_formats"]) std::printf(" %s", f.get<std::string>().c_str());
      if (g.contains("copy_bandwidth_gb_per_s")) std::printf("; copy bandwidth %.0f GB/s", g["copy_bandwidth_gb_per_s"].get<double>());
      std::printf("\n");
    }
    return 0;
  };
});

}  // namespace
}  // namespace qforge::cli
