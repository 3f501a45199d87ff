// tools/qforge/command.h — subcommand registry of the qforge CLI. Each subcommand lives in its own
// file and registers itself with a static Registrar; main.cpp only builds the app from the table.
#pragma once
#include <CLI/CLI.hpp>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace qforge::cli {

// setup adds the subcommand's options to `app` and returns the action run when it is chosen
// (its int is the exit status).
using Setup = std::function<std::function<int()>(CLI::App& app)>;

struct Command {
  std::string name;
  std::string description;
  Setup setup;
};

std::vector<Command>& registry();

struct Registrar {
  Registrar(std::string name, std::string description, Setup setup) {
    registry().push_back({std::move(name), std::move(description), std::move(setup)});
  }
};

// Prints `j` as one line on stdout (the JSON contract: the last line of stdout is one object).
void print_json(const nlohmann::json& j);

}  // namespace qforge::cli
