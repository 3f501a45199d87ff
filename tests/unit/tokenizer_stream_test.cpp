// tests/unit/tokenizer_stream_test.cpp — StreamingDecoder (pieces are whole UTF-8 and concatenate
// to decode(all ids)) on the demo SentencePiece tokenizer, a byte-level tokenizer and one with
// clean_up_tokenization_spaces; invalid UTF-8 input; the tokenize/detokenize CLI.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "qforge/tokenizer.h"
#include "test_support.h"
#include "tokenizer/text_util.h"

namespace qforge {
namespace {

using nlohmann::json;

const Tokenizer& demo() {
  static auto t = Tokenizer::load(test::demo_model_dir());
  return *t;
}

// Streams `ids` and checks every piece is valid UTF-8 and the pieces concatenate to decode().
void check_stream(const Tokenizer& tok, const std::vector<int32_t>& ids, bool skip) {
  StreamingDecoder sd(tok, skip);
  std::string all;
  for (int32_t id : ids) {
    std::string piece = sd.push(id);
    ASSERT_TRUE(tok::utf8_valid(piece));
    all += piece;
  }
  std::string rest = sd.finish();
  ASSERT_TRUE(tok::utf8_valid(rest));
  all += rest;
  ASSERT_EQ(all, tok.decode(ids, skip));
}

TEST(TokenizerStream, DemoRandomIdsIncludingBytesAndSpecials) {
  std::mt19937 rng(1234);
  for (int trial = 0; trial < 300; ++trial) {
    std::vector<int32_t> ids;
    int len = 1 + static_cast<int>(rng() % 40);
    for (int k = 0; k < len; ++k) {
      uint32_t r = rng() % 10;
      if (r < 4) ids.push_back(static_cast<int32_t>(3 + rng() % 256));  // <0x00>..<0xFF>
      else if (r < 5) ids.push_back(static_cast<int32_t>(rng() % 3));   // <unk> <s> </s>
      else ids.push_back(static_cast<int32_t>(259 + rng() % (32000 - 259)));
    }
    check_stream(demo(), ids, trial % 2 == 0);
  }
}

TEST(TokenizerStream, DemoMultibyteCharactersAreNotSplit) {
  auto ids = demo().encode("Emoji: 🤗🚀👍🏽 done, 日本語, naïve", false);
  StreamingDecoder sd(demo(), true);
  std::vector<std::string> pieces;
  for (int32_t id : ids) pieces.push_back(sd.push(id));
  pieces.push_back(sd.finish());
  std::string all;
  for (auto& p : pieces) all += p;
  EXPECT_EQ(all, "Emoji: 🤗🚀👍🏽 done, 日本語, naïve");
  // 🤗 is four byte-fallback tokens: nothing may come out until the run is closed.
  EXPECT_EQ(std::count_if(pieces.begin(), pieces.end(), [](auto& p) { return p.find("\xF0") != std::string::npos; }), 3);
}

std::filesystem::path write_tokenizer(const json& tj, const json& cfg = nullptr) {
  auto dir = test::temp_dir("tokstream");
  std::ofstream(dir / "tokenizer.json") << tj.dump();
  if (!cfg.is_null()) std::ofstream(dir / "tokenizer_config.json") << cfg.dump();
  return dir;
}

TEST(TokenizerStream, ByteLevelRandomBytes) {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) {
    std::string s;
    tok::utf8_append(s, tok::byte_to_unicode(static_cast<uint8_t>(b)));
    vocab[s] = b;
  }
  json tj = {{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", json::array()}}},
             {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
             {"decoder", {{"type", "ByteLevel"}}}};
  auto tok = Tokenizer::load(write_tokenizer(tj));
  std::string text = "héllo 🤗 wörld 日本";
  auto ids = tok->encode(text);
  EXPECT_EQ(ids.size(), text.size());  // one id per byte
  EXPECT_EQ(tok->decode(ids), text);
  check_stream(*tok, ids, false);
  std::mt19937 rng(99);
  for (int trial = 0; trial < 300; ++trial) {
    std::vector<int32_t> rid;
    int len = 1 + static_cast<int>(rng() % 24);
    for (int k = 0; k < len; ++k) rid.push_back(static_cast<int32_t>(rng() % 2 ? rng() % 128 : 128 + rng() % 128));
    check_stream(*tok, rid, false);
  }
}

TEST(TokenizerStream, CleanupSpacesHeldBack) {
  json vocab = {{"a", 0}, {" ", 1}, {".", 2}, {"n't", 3}, {"'", 4}, {"s", 5}};
  json tj = {{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", json::array()}}}, {"decoder", {{"type", "Fuse"}}}};
  auto tok = Tokenizer::load(write_tokenizer(tj, json{{"clean_up_tokenization_spaces", true}}));
  EXPECT_EQ(tok->decode(std::vector<int32_t>{0, 1, 2}), "a.");
  check_stream(*tok, {0, 1, 2, 1, 3, 1, 4, 5, 1, 0, 1}, false);
  std::mt19937 rng(7);
  for (int trial = 0; trial < 300; ++trial) {
    std::vector<int32_t> ids;
    int len = 1 + static_cast<int>(rng() % 16);
    for (int k = 0; k < len; ++k) ids.push_back(static_cast<int32_t>(rng() % 6));
    check_stream(*tok, ids, false);
  }
}

TEST(TokenizerInvalidUtf8, ReplacedBeforeNormalizing) {
  // Documented behaviour: invalid bytes become U+FFFD (as Python's errors="replace") first.
  std::string bad = "ab\xFF" "c\xE2\x80";
  EXPECT_EQ(demo().encode(bad), demo().encode("ab\xEF\xBF\xBD" "c\xEF\xBF\xBD"));
  auto ids = demo().encode(bad, false);
  EXPECT_EQ(demo().decode(ids), "ab\xEF\xBF\xBD" "c\xEF\xBF\xBD");
}

TEST(TokenizerCli, TokenizeAndDetokenize) {
  auto model = test::demo_model_dir().string();
  auto r = test::run_qforge("tokenize --model '" + model + "' --text 'Hello, world!' --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto last = r.out.substr(r.out.rfind('{'));
  auto j = json::parse(last);
  EXPECT_EQ(j["ids"], json({1, 22557, 28725, 1526, 28808}));
  EXPECT_EQ(j["tokens"][1], "\xE2\x96\x81Hello");
  r = test::run_qforge("tokenize --model '" + model + "' --text 'Hello, world!' --no-special");
  EXPECT_EQ(r.out, "22557 28725 1526 28808\n");
  r = test::run_qforge("detokenize --model '" + model + "' --ids 1,22557,28725,1526,28808 --skip-special --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["text"], "Hello, world!");
  r = test::run_qforge("detokenize --model '" + model + "' --ids 1,22557");
  EXPECT_EQ(r.out, "<s> Hello\n");
  r = test::run_qforge("detokenize --model '" + model + "' --ids 1,99999999");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("--ids"), std::string::npos);
}

}  // namespace
}  // namespace qforge
