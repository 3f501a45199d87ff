// tests/e2e/quantize_cli_test.cpp — `qforge quantize` as users call it: the JSON summary, reloading
// the output with no flags, perplexity of the reloaded nf4/int8/fp8 checkpoints equal to quantize-at-load
// on the same windows, and bad arguments / destinations giving one-line errors with nothing left behind.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>

#include "test_support.h"

using qforge::test::run_qforge;
namespace fs = std::filesystem;

namespace {

std::string q(const fs::path& p) { return "'" + p.string() + "'"; }

std::vector<std::string> listing(const fs::path& d) {
  std::vector<std::string> v;
  for (const auto& e : fs::directory_iterator(d)) v.push_back(e.path().filename().string());
  std::sort(v.begin(), v.end());
  return v;
}

std::string ppl_cmd(const std::string& model, const std::string& extra) {
  return "ppl --model " + model + " --text-file " + q(qforge::test::source_dir() / "eval" / "kjv_eval.txt") +
         " --max-windows 3 --json --device cpu " + extra;
}

}  // namespace

TEST(QuantizeCli, ReloadedPerplexityEqualsQuantizeAtLoad) {
  const fs::path dir = qforge::test::temp_dir("qcli");
  const std::string model = q(qforge::test::demo_model_dir());
  for (const std::string fmt : {"nf4", "int8", "fp8"}) {
    const fs::path out = dir / fmt;
    auto r = run_qforge("quantize --model " + model + " --format " + fmt + " --out " + q(out) + " --json");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto j = qforge::test::last_json_line(r.out);
    EXPECT_EQ(j["quantized_modules"], 42) << fmt;
    EXPECT_EQ(j["kept_modules"], 0) << fmt;
    EXPECT_EQ(j["shards"], 1) << fmt;
    auto reloaded = run_qforge(ppl_cmd(q(out), ""));
    ASSERT_EQ(reloaded.exit_code, 0) << reloaded.err;
    auto at_load = run_qforge(ppl_cmd(model, "--quant " + fmt));
    ASSERT_EQ(at_load.exit_code, 0) << at_load.err;
    const auto a = qforge::test::last_json_line(reloaded.out), b = qforge::test::last_json_line(at_load.out);
    EXPECT_EQ(a["tokens_scored"], b["tokens_scored"]) << fmt;
    EXPECT_EQ(a["windows"], 3) << fmt;
    EXPECT_EQ(a["ppl"].get<double>(), b["ppl"].get<double>()) << fmt;  // same bytes, same kernels: exact
    EXPECT_EQ(a["nll_per_token"].get<double>(), b["nll_per_token"].get<double>()) << fmt;
    EXPECT_EQ(a["dtype"], b["dtype"]) << fmt;
  }
}

TEST(QuantizeCli, BadArgumentsLeaveNothingBehind) {
  const fs::path dir = qforge::test::temp_dir("qclibad");
  const std::string model = q(qforge::test::demo_model_dir());
  fs::create_directory(dir / "exists");
  std::ofstream(dir / "afile") << "x";
  const auto before = listing(dir);
  struct Bad { std::string args, needle; };
  const std::vector<Bad> bad = {
      {"--format nf5 --out " + q(dir / "o"), "unknown format 'nf5'"},
      {"--format q4_k --out " + q(dir / "o"), "--format q4_k"},
      {"--format nf4 --blocksize 48 --out " + q(dir / "o"), "--blocksize 48"},
      {"--format nf4 --compute-dtype i8 --out " + q(dir / "o"), "--compute-dtype"},
      {"--format nf4 --out " + q(dir / "exists"), "already exists"},
      {"--format nf4 --out " + q(dir / "afile" / "o"), "is not a directory"},
      {"--format nf4 --out " + q(dir / "missing" / "o"), "does not exist"},
      {"--format fp8 --symmetric --out " + q(dir / "o"), "--symmetric"},
  };
  for (const auto& b : bad) {
    auto r = run_qforge("quantize --model " + model + " " + b.args);
    EXPECT_EQ(r.exit_code, 1) << b.args;
    EXPECT_NE(r.err.find(b.needle), std::string::npos) << b.args << " -> " << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_EQ(listing(dir), before) << b.args;
  }
  auto r = run_qforge("quantize --model " + q(dir / "nomodel") + " --format nf4 --out " + q(dir / "o"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("nomodel"), std::string::npos) << r.err;
  EXPECT_EQ(listing(dir), before);
}

TEST(QuantizeCli, GptqAndNvfp4LoadBackWithNoFlags) {
  const fs::path dir = qforge::test::temp_dir("qcli2");
  const std::string model = q(qforge::test::demo_model_dir());
  for (const std::string args : {"--format int4 --symmetric", "--format nvfp4", "--format nf4 --double-quant --blocksize 128"}) {
    const fs::path out = dir / std::to_string(std::hash<std::string>{}(args));
    auto r = run_qforge("quantize --model " + model + " " + args + " --out " + q(out));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("42 linear layers quantized"), std::string::npos) << r.out;
    auto lg = run_qforge("logits --model " + q(out) + " --device cpu --ids 1,450,3186 --json --out " + q(dir / "l.f32"));
    EXPECT_EQ(lg.exit_code, 0) << args << ": " << lg.err;
  }
}
