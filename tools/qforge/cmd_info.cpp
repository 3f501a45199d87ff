// tools/qforge/cmd_info.cpp — `qforge info`: version, build options, CPU features, threads.
#include <thread>

#include "command.h"

namespace qforge::cli {
namespace {
Registrar reg("info", "Show version, build options, CPU features and threads", [](CLI::App& app) {
  auto json = std::make_shared<bool>(false);
  app.add_flag("--json", *json, "Print one JSON object");
  return [json]() -> int {
    nlohmann::json j;
    j["version"] = QFORGE_VERSION_STRING;
    j["threads"] = std::thread::hardware_concurrency();
    if (*json) print_json(j);
    else std::printf("qforge %s\nthreads: %u\n", QFORGE_VERSION_STRING, std::thread::hardware_concurrency());
    return 0;
  };
});
}  // namespace
}  // namespace qforge::cli
