// backends/backend_registry.cpp — maps backend names to factories. ref and cpu are always
// present; others (cuda) add themselves through BackendRegistrar when their target is linked.
#include <algorithm>
#include <map>

#include "backends/backend.h"
#include "qforge/status.h"

namespace qforge {

std::unique_ptr<Backend> make_ref_backend();
std::unique_ptr<Backend> make_cpu_backend();

namespace {
struct Entry {
  BackendFactory make;
  bool (*usable)();
};
std::map<std::string, Entry>& extra() {
  static std::map<std::string, Entry> m;
  return m;
}
}  // namespace

BackendRegistrar::BackendRegistrar(const char* name, BackendFactory f, bool (*usable)()) { extra()[name] = {f, usable}; }

std::vector<std::string> available_backends() {
  std::vector<std::string> v{"cpu", "ref"};
  for (auto& [n, e] : extra())  // "cuda:N" aliases are accepted by make_backend but not listed
    if (n.find(':') == std::string::npos && e.usable()) v.push_back(n);
  return v;
}

std::unique_ptr<Backend> make_backend(const std::string& name) {
  if (name == "ref") return make_ref_backend();
  if (name == "cpu") return make_cpu_backend();
  auto it = extra().find(name);
  if (it == extra().end()) throw Error("unknown device '" + name + "' (this build has: cpu, ref" +
                                       std::string(extra().empty() ? "" : ", cuda") + ")");
  if (!it->second.usable()) throw Error("device '" + name + "' is not available on this machine");
  return it->second.make();
}

}  // namespace qforge
