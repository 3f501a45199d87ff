// tests/test_support.cpp — see test_support.h.
#include "test_support.h"

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>

#include "qforge/generate.h"

namespace qforge::test {

std::filesystem::path source_dir() {
  if (const char* e = std::getenv("QFORGE_SOURCE_DIR")) return e;
  return QFORGE_SOURCE_DIR;
}
std::filesystem::path demo_model_dir() { return source_dir() / "models" / "kjv-llama-14m"; }
std::filesystem::path golden_json() { return source_dir() / "models" / "kjv-llama-14m.golden.json"; }

std::string read_file(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

CmdResult run_qforge(const std::string& args) { return run_qforge_stdin(args, ""); }

CmdResult run_qforge_stdin(const std::string& args, const std::string& input) {
  auto dir = temp_dir("cmd");
  std::string out = (dir / "out").string(), err = (dir / "err").string(), in = (dir / "in").string();
  std::ofstream(in, std::ios::binary) << input;
  // QFORGE_BINARY in the environment wins (binaries built on one machine and run on another).
  const char* bin = std::getenv("QFORGE_BINARY");
  std::string cmd = std::string("'") + (bin && *bin ? bin : QFORGE_BINARY) + "' " + args + " >'" + out + "' 2>'" + err + "' <'" + in + "'";
  int st = std::system(cmd.c_str());
  int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return {code, read_file(out), read_file(err)};
}

nlohmann::json last_json_line(const std::string& out) {
  std::string s = out;
  while (!s.empty() && s.back() == '\n') s.pop_back();
  const size_t nl = s.rfind('\n');
  return nlohmann::json::parse(nl == std::string::npos ? s : s.substr(nl + 1));
}

namespace {
std::vector<std::filesystem::path>& all_temp_dirs() {
  static std::vector<std::filesystem::path> v;
  static bool registered = [] {
    std::atexit([] {
      std::error_code ec;
      for (auto& p : all_temp_dirs()) std::filesystem::remove_all(p, ec);
    });
    return true;
  }();
  (void)registered;
  return v;
}
}  // namespace

std::filesystem::path temp_dir(const std::string& tag) {
  static std::mt19937_64 rng(std::random_device{}());
  auto base = std::filesystem::temp_directory_path() /
              ("qforge-test-" + tag + "-" + std::to_string(getpid()) + "-" + std::to_string(rng() % 1000000000));
  std::filesystem::create_directories(base);
  all_temp_dirs().push_back(base);
  return base;
}

std::unique_ptr<Model> load_demo(const std::string& device, std::optional<DType> dtype, const std::string& max_memory) {
  LoadOptions o;
  o.device = device;
  o.dtype = dtype;
  o.max_memory = max_memory;
  return Model::load(demo_model_dir().string(), o);
}

std::vector<float> randn(int64_t n, uint32_t seed, float sd) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, sd);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = d(rng);
  return v;
}

std::vector<int32_t> sample_whole_rows(Model& m, const std::vector<int32_t>& prompt, const SamplingParams& p, int n) {
  Sampler s(p);
  std::vector<int32_t> hist = prompt, out;
  auto logits = m.forward(prompt, 0);
  int64_t pos = int64_t(prompt.size());
  for (int i = 0; i < n; ++i) {
    const int32_t id = s.sample(logits, hist);
    out.push_back(id);
    hist.push_back(id);
    logits = m.forward(std::span<const int32_t>(&id, 1), pos++);
  }
  return out;
}

std::vector<int32_t> greedy(Model& m, const std::vector<int32_t>& prompt, int n) {
  GenerateOptions g;
  g.max_new_tokens = n;
  g.ignore_eos = true;
  return generate(m, nullptr, prompt, g).new_ids;
}

}  // namespace qforge::test
