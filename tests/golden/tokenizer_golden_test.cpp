// tests/golden/tokenizer_golden_test.cpp — the demo model's tokenizer against the outputs recorded
// from transformers 5.17 / tokenizers 0.23 in models/kjv-llama-14m.golden.json: encode (with and
// without special tokens), the raw tokenizers library, decode (skipping and keeping specials),
// the chat rendering's ids, and streaming decode of every case.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "qforge/tokenizer.h"
#include "test_support.h"

namespace qforge {
namespace {

using nlohmann::json;

const json& golden() {
  static const json g = json::parse(test::read_file(test::golden_json()));
  return g;
}
const Tokenizer& demo() {
  static auto t = Tokenizer::load(test::demo_model_dir());
  return *t;
}

TEST(TokenizerGolden, EncodeLikeTransformers) {
  int n = 0;
  for (auto& c : golden().at("encode")) {
    std::string text = c.at("text");
    EXPECT_EQ(demo().encode(text, true), c.at("ids").get<std::vector<int32_t>>()) << "text: " << text;
    EXPECT_EQ(demo().encode(text, false), c.at("ids_no_special").get<std::vector<int32_t>>()) << "text: " << text;
    ++n;
  }
  EXPECT_GE(n, 20);
}

TEST(TokenizerGolden, EncodeLikeTokenizersLibrary) {
  auto raw = Tokenizer::load(test::demo_model_dir(), TokenizerLoadOptions{.transformers_compat = false});
  int n = 0;
  for (auto& c : golden().at("encode_tokenizers_lib")) {
    std::string text = c.at("text");
    EXPECT_EQ(raw->encode(text, true), c.at("ids").get<std::vector<int32_t>>()) << "text: " << text;
    ++n;
  }
  EXPECT_GE(n, 20);
}

TEST(TokenizerGolden, Decode) {
  for (auto& c : golden().at("decode")) {
    auto ids = c.at("ids").get<std::vector<int32_t>>();
    EXPECT_EQ(demo().decode(ids, true), c.at("text").get<std::string>());
    EXPECT_EQ(demo().decode(ids, false), c.at("text_with_special").get<std::string>());
  }
}

TEST(TokenizerGolden, StreamingMatchesDecode) {
  for (auto& c : golden().at("decode")) {
    auto ids = c.at("ids").get<std::vector<int32_t>>();
    for (bool skip : {true, false}) {
      StreamingDecoder sd(demo(), skip);
      std::string streamed;
      for (int32_t id : ids) streamed += sd.push(id);
      streamed += sd.finish();
      EXPECT_EQ(streamed, demo().decode(ids, skip));
    }
  }
}

TEST(TokenizerGolden, ChatRenderingIds) {
  const json& chat = golden().at("chat");
  // transformers' apply_chat_template(tokenize=True) encodes the rendering without adding BOS.
  EXPECT_EQ(demo().encode(chat.at("rendered").get<std::string>(), false), chat.at("ids").get<std::vector<int32_t>>());
}

TEST(TokenizerGolden, SpecialTokensAndMetadata) {
  EXPECT_EQ(demo().vocab_size(), 32000);
  EXPECT_EQ(demo().bos_id(), 1);
  EXPECT_EQ(demo().eos_id(), 2);
  EXPECT_EQ(demo().bos_token(), "<s>");
  EXPECT_EQ(demo().eos_token(), "</s>");
  EXPECT_TRUE(demo().is_special(0));
  EXPECT_TRUE(demo().is_special(2));
  EXPECT_FALSE(demo().is_special(22557));
  EXPECT_EQ(demo().token_to_id("<0x0A>"), 13);
  EXPECT_EQ(demo().id_to_token(13), "<0x0A>");
  EXPECT_FALSE(demo().token_to_id("no-such-token-xyz").has_value());
  EXPECT_NE(demo().chat_template().find("<|assistant|>"), std::string::npos);
}

}  // namespace
}  // namespace qforge
