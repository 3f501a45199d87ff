// tests/unit/jinja_templates_test.cpp — real Hugging Face chat templates (TinyLlama, Llama 2,
// Llama 3.1/3.2, Qwen2.5, Qwen3, Mistral v0.2/v0.3, Gemma 2, Phi-3, DeepSeek-R1) committed under
// tests/data/chat_templates/, rendered exactly as the JavaScript reference renders them
// (expected.json from tests/npm/render_chat_templates.mjs; every case also matches Python jinja2).
#include <gtest/gtest.h>

#include "qforge/chat_template.h"
#include "qforge/status.h"
#include "test_support.h"

namespace {
using J = nlohmann::ordered_json;

std::filesystem::path fixtures() { return qforge::test::source_dir() / "tests/data/chat_templates"; }

TEST(JinjaRealTemplates, MatchReferenceRenders) {
  J doc = J::parse(qforge::test::read_file(fixtures() / "expected.json"));
  int checked = 0;
  for (const auto& c : doc["cases"]) {
    std::string source = c["source"];
    if (source.rfind("file:", 0) != 0) continue;  // npm cases: tests/golden/chat_template_test.cpp
    qforge::ChatTemplate t(qforge::test::read_file(fixtures() / source.substr(5)));
    EXPECT_EQ(t.render(c["context"]), c["expected"].get<std::string>()) << c["name"];
    ++checked;
  }
  EXPECT_GE(checked, 30);
}

TEST(JinjaRealTemplates, RaiseExceptionFromTemplate) {
  qforge::ChatTemplate gemma2(qforge::test::read_file(fixtures() / "gemma-2-2b-it.jinja"));
  J ctx = {{"bos_token", "<bos>"}, {"messages", J::array({{{"role", "system"}, {"content", "x"}}})}};
  try {
    gemma2.render(ctx);
    FAIL() << "expected an error";
  } catch (const qforge::Error& e) {
    EXPECT_NE(std::string(e.what()).find("System role not supported"), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).rfind("chat template:1:", 0), 0u) << e.what();
  }
  qforge::ChatTemplate mistral(qforge::test::read_file(fixtures() / "mistral-7b-instruct-v0.3.jinja"));
  J bad = {{"messages", J::array({{{"role", "assistant"}, {"content", "x"}}})}};
  EXPECT_THROW(mistral.render(bad), qforge::Error);
}

TEST(JinjaRealTemplates, Llama32UsesStrftimeNowWithoutDateString) {
  qforge::ChatTemplate t(qforge::test::read_file(fixtures() / "llama-3.2-3b-instruct.jinja"));
  J ctx = {{"bos_token", "<|begin_of_text|>"}, {"messages", J::array({{{"role", "user"}, {"content", "hi"}}})}};
  std::string out = t.render(ctx);
  EXPECT_NE(out.find("Today Date: "), std::string::npos);
  EXPECT_EQ(out.find("26 Jul 2024"), std::string::npos);  // strftime_now is defined, so today's date is used
}

}  // namespace
