// backends/host_backend.h — what the host-memory backends (ref, cpu) share: activations and KV
// cache in tagged host allocations, copies to and from the host as plain memcpy.
#pragma once
#include <cstring>

#include "backends/backend.h"

namespace qforge {

class HostBackend : public Backend {
 public:
  std::shared_ptr<float> alloc(int64_t n, MemCategory cat) override {
    auto p = host_alloc(size_t(n) * sizeof(float), cat, true);
    return std::shared_ptr<float>(p, reinterpret_cast<float*>(p.get()));
  }
  void to_host(const float* s, float* d, int64_t n) override { std::memcpy(d, s, size_t(n) * sizeof(float)); }
  void from_host(const float* s, float* d, int64_t n) override { std::memcpy(d, s, size_t(n) * sizeof(float)); }
};

}  // namespace qforge
