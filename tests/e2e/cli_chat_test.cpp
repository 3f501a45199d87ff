// tests/e2e/cli_chat_test.cpp — `qforge chat` (multi-turn with KV-cache reuse, /reset, /exit) and
// `qforge run --chat/--system` on the demo model, as a newcomer would use them.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "test_support.h"

using namespace qforge;

namespace {
std::string model() { return "'" + test::demo_model_dir().string() + "'"; }

std::vector<std::string> replies(const std::string& out) {
  std::vector<std::string> r;
  std::stringstream ss(out);
  for (std::string line; std::getline(ss, line);)
    if (line.rfind("> ", 0) == 0 && line.size() > 2) r.push_back(line.substr(2));
  return r;
}
}  // namespace

TEST(CliChat, MultiTurnResetAndExit) {
  auto r = test::run_qforge_stdin("chat --model " + model() + " --max-new-tokens 40 --dtype f32",
                                  "Recite Psa23:1\nRecite Ge1:1\n/reset\nRecite Psa23:1\n/exit\nnever read\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto rs = replies(r.out);
  ASSERT_GE(rs.size(), 4u) << r.out;
  EXPECT_EQ(rs[2], "(history cleared)");
  // After /reset the same question gets the same greedy answer (the cache was really reset).
  EXPECT_EQ(rs[0], rs[3]);
  EXPECT_NE(rs[0], rs[1]);
  EXPECT_EQ(r.out.find("never read"), std::string::npos);
}

TEST(CliChat, FirstTurnEqualsRunChat) {
  auto c = test::run_qforge_stdin("chat --model " + model() + " --max-new-tokens 30 --dtype f32", "Recite Psa23:1\n");
  auto r = test::run_qforge("run --chat --model " + model() + " --prompt 'Recite Psa23:1' --max-new-tokens 30 --dtype f32 --json");
  ASSERT_EQ(c.exit_code, 0) << c.err;
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto trimmed = r.out.substr(0, r.out.find_last_not_of('\n') + 1);
  auto j = nlohmann::json::parse(trimmed.substr(trimmed.rfind('\n') + 1));
  // run --chat renders the template (no BOS: the template text carries its special tokens).
  EXPECT_EQ(j["prompt_ids"][0], 523);  // "▁<" of "<|user|>", as the golden chat ids begin
  auto rs = replies(c.out);
  ASSERT_FALSE(rs.empty());
  EXPECT_EQ(rs[0], j["text"].get<std::string>());
}

TEST(CliChat, SystemNeedsChat) {
  auto r = test::run_qforge("run --model " + model() + " --prompt hi --system 'be brief'");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("--chat"), std::string::npos);
}
