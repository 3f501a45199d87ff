// memory/devices.cpp — the table of known devices for `qforge mem` verdicts, and the parsers of
// the size flags (--device-memory 24GiB, --params 70B). Each device's memory figure says where it
// comes from: measured here, the driver's reported total, or the vendor's nominal size.
#include <cctype>
#include <charconv>
#include <cmath>
#include <string>

#include "qforge/memory_estimate.h"
#include "qforge/status.h"

namespace qforge {

namespace {
constexpr int64_t kMiB = 1LL << 20, kGiB = 1LL << 30;
}  // namespace

const std::vector<DeviceSpec>& known_devices() {
  static const std::vector<DeviceSpec> v = {
      {"DGX Spark 128GB", 128'000'000'000LL, DeviceKind::CudaUnified,
       "128 GB LPDDR5x (10^9 bytes) shared by CPU and GPU; the OS's share is not deducted"},
      {"H100 80GB", 81079 * kMiB, DeviceKind::Cuda,
       "81559 MiB total - 480 MiB driver-reserved, measured (nvidia-smi, driver 580, CUDA 13)"},
      {"H200 141GB", 143771 * kMiB, DeviceKind::Cuda, "nvidia-smi total as publicly reported; driver reserve not deducted"},
      {"A100 40GB", 40960 * kMiB, DeviceKind::Cuda, "nvidia-smi total as publicly reported; driver reserve not deducted"},
      {"A100 80GB", 81920 * kMiB, DeviceKind::Cuda, "nvidia-smi total as publicly reported; driver reserve not deducted"},
      {"RTX 4090 24GB", 24564 * kMiB, DeviceKind::Cuda, "nvidia-smi total as publicly reported; driver reserve not deducted"},
      {"L4 24GB", 23034 * kMiB, DeviceKind::Cuda, "nvidia-smi total (ECC on) as publicly reported"},
      {"Laptop 16GB", 16 * kGiB, DeviceKind::Cpu, "system RAM, CPU inference; the OS's share is not deducted"},
      {"Laptop 32GB", 32 * kGiB, DeviceKind::Cpu, "system RAM, CPU inference; the OS's share is not deducted"},
      {"Laptop 64GB", 64 * kGiB, DeviceKind::Cpu, "system RAM, CPU inference; the OS's share is not deducted"},
  };
  return v;
}

namespace {

std::string lower(std::string_view s) {
  std::string l(s);
  for (auto& ch : l) ch = char(std::tolower(static_cast<unsigned char>(ch)));
  return l;
}

// Splits "  1.5 GiB " into 1.5 and "gib". Throws on a missing or malformed number.
std::pair<double, std::string> number_and_unit(std::string_view text, std::string_view flag) {
  std::string s = lower(text);
  size_t a = s.find_first_not_of(" \t"), b = s.find_last_not_of(" \t");
  if (a == std::string::npos)
    throw Error(std::string(flag) + ": empty value");
  s = s.substr(a, b - a + 1);
  double v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr == s.data())
    throw Error(std::string(flag) + ": '" + std::string(text) + "' does not start with a number");
  std::string unit = s.substr(size_t(ptr - s.data()));
  while (!unit.empty() && unit.front() == ' ') unit.erase(unit.begin());
  if (!std::isfinite(v) || v <= 0)
    throw Error(std::string(flag) + ": '" + std::string(text) + "' must be a positive finite number");
  return {v, unit};
}

int64_t checked_round(double v, std::string_view text, std::string_view flag) {
  if (v >= 9.0e18) throw Error(std::string(flag) + ": '" + std::string(text) + "' is too large");
  const int64_t r = std::llround(v);
  if (r <= 0) throw Error(std::string(flag) + ": '" + std::string(text) + "' rounds to zero");
  return r;
}

}  // namespace

int64_t parse_byte_size(std::string_view text, std::string_view flag) {
  auto [v, unit] = number_and_unit(text, flag);
  // Single letters and "iB" units are binary (1024-based); "KB/MB/GB/TB" are decimal.
  static const std::pair<std::string_view, double> units[] = {
      {"", 1.0},          {"b", 1.0},
      {"k", 1024.0},      {"kib", 1024.0},     {"kb", 1e3},
      {"m", 1048576.0},   {"mib", 1048576.0},  {"mb", 1e6},
      {"g", 1073741824.0}, {"gib", 1073741824.0}, {"gb", 1e9},
      {"t", 1099511627776.0}, {"tib", 1099511627776.0}, {"tb", 1e12},
  };
  for (const auto& [u, mult] : units)
    if (unit == u) return checked_round(v * mult, text, flag);
  throw Error(std::string(flag) + ": unknown size unit in '" + std::string(text) +
              "' (use B, KiB, MiB, GiB, TiB, KB, MB, GB, TB)");
}

int64_t parse_param_count(std::string_view text, std::string_view flag) {
  auto [v, unit] = number_and_unit(text, flag);
  static const std::pair<std::string_view, double> units[] = {
      {"", 1.0}, {"k", 1e3}, {"m", 1e6}, {"b", 1e9}, {"g", 1e9}, {"t", 1e12}};
  for (const auto& [u, mult] : units)
    if (unit == u) return checked_round(v * mult, text, flag);
  throw Error(std::string(flag) + ": unknown suffix in '" + std::string(text) + "' (use K, M, B or T, e.g. 70B)");
}

}  // namespace qforge
