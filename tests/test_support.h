// tests/test_support.h — paths to the bundled demo model, goldens and the built CLI, a helper
// that runs the CLI and captures its output (e2e tests), and demo-model load / greedy helpers.
#pragma once
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "qforge/model.h"
#include "qforge/sampler.h"

namespace qforge::test {

std::filesystem::path source_dir();
std::filesystem::path demo_model_dir();  // models/kjv-llama-14m
std::filesystem::path golden_json();     // models/kjv-llama-14m.golden.json
std::string read_file(const std::filesystem::path& p);

struct CmdResult {
  int exit_code;
  std::string out;  // stdout
  std::string err;  // stderr
};
// Runs the built qforge binary with `args` (a shell-quoted string).
CmdResult run_qforge(const std::string& args);
// Same, with `input` on its standard input.
CmdResult run_qforge_stdin(const std::string& args, const std::string& input);
// The JSON object on the last non-empty line of a command's stdout (the --json contract).
nlohmann::json last_json_line(const std::string& out);
// The demo model on `device` (dtype: the checkpoint's when unset; max_memory as --max-memory).
std::unique_ptr<Model> load_demo(const std::string& device, std::optional<DType> dtype = {},
                                 const std::string& max_memory = "");
// n draws of N(0, sd) from std::mt19937(seed): the same values on every run and machine.
std::vector<float> randn(int64_t n, uint32_t seed, float sd = 1.0f);
// `n` greedy tokens after `prompt` (EOS ignored).
std::vector<int32_t> greedy(Model& m, const std::vector<int32_t>& prompt, int n);
// `n` tokens after `prompt` the plain way: the whole logits row of every step through
// Sampler::sample (the reference the candidate / on-device selection paths must equal).
std::vector<int32_t> sample_whole_rows(Model& m, const std::vector<int32_t>& prompt, const SamplingParams& p, int n);
// A fresh empty temporary directory, removed at process exit.
std::filesystem::path temp_dir(const std::string& tag);

}  // namespace qforge::test
