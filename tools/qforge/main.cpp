// tools/qforge/main.cpp — entry point: builds the CLI from the subcommand registry, runs the
// chosen command and turns every qforge::Error into one line on stderr and a non-zero exit.
#include <cstdio>
#include <iostream>
#include <memory>

#include "command.h"
#include "qforge/status.h"

namespace qforge::cli {

std::vector<Command>& registry() {
  static std::vector<Command> r;
  return r;
}

void print_json(const nlohmann::json& j) {
  std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << std::endl;
}

}  // namespace qforge::cli

int main(int argc, char** argv) {
  using namespace qforge;
  CLI::App app{"qforge: load, quantize, measure and run Hugging Face LLM checkpoints"};
  app.require_subcommand(1);
  app.set_version_flag("--version", QFORGE_VERSION_STRING);
  std::function<int()> action;
  std::vector<std::pair<CLI::App*, std::function<int()>>> actions;
  auto& reg = cli::registry();
  std::sort(reg.begin(), reg.end(), [](auto& a, auto& b) { return a.name < b.name; });
  for (auto& c : reg) {
    CLI::App* sub = app.add_subcommand(c.name, c.description);
    actions.emplace_back(sub, c.setup(*sub));
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    for (auto& [sub, act] : actions)
      if (sub->parsed()) return act();
    return 2;
  } catch (const qforge::Error& e) {
    std::cout.flush();
    std::fprintf(stderr, "qforge: error: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::cout.flush();
    std::fprintf(stderr, "qforge: error: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::cout.flush();
    std::fprintf(stderr, "qforge: error: %s\n", e.what());
    return 1;
  }
}
