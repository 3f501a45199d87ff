// tests/unit/tokenizer_pipeline_test.cpp — the tokenizer.json stages in isolation: UTF-8 repair,
// normalizers, pre-tokenizer split behaviours, decoders, BPE model options and added-token rules,
// with expectations taken from the Hugging Face tokenizers documentation and Python's codecs.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "qforge/status.h"
#include "qforge/tokenizer.h"
#include "test_support.h"
#include "tokenizer/bpe_model.h"
#include "tokenizer/pipeline.h"
#include "tokenizer/text_util.h"

namespace qforge::tok {
namespace {

using nlohmann::json;
using Strings = std::vector<std::string>;

Strings pre_tokenize(const json& j, const std::string& text) {
  auto p = make_pre_tokenizer(j);
  std::vector<Piece> pieces{{text, true}};
  p->pre_tokenize(pieces);
  Strings out;
  for (auto& x : pieces) out.push_back(x.text);
  return out;
}
std::string normalize(const json& j, std::string s) {
  make_normalizer(j)->normalize(s);
  return s;
}
Strings decode_chain(const json& j, Strings tokens) {
  make_decoder(j)->decode_chain(tokens);
  return tokens;
}

TEST(TokenizerUtf8, SanitizeMatchesPythonReplace) {
  // Expected values: bytes.decode("utf-8", errors="replace") in CPython.
  EXPECT_EQ(utf8_sanitize("abc"), "abc");
  EXPECT_EQ(utf8_sanitize("\xE2\x80"), "\xEF\xBF\xBD");                   // truncated 3-byte char: one U+FFFD
  EXPECT_EQ(utf8_sanitize("a\xFF" "b"), "a\xEF\xBF\xBD" "b");
  EXPECT_EQ(utf8_sanitize("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
  EXPECT_EQ(utf8_sanitize("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");      // overlong
  EXPECT_EQ(utf8_sanitize("\xF0\x9F\xA4"), "\xEF\xBF\xBD");              // cut emoji
  EXPECT_EQ(utf8_sanitize("\xF0\x9F\xA4\x97"), "\xF0\x9F\xA4\x97");
  EXPECT_EQ(utf8_incomplete_tail("ab\xF0\x9F\xA4"), 3u);
  EXPECT_EQ(utf8_incomplete_tail("ab\xF0\x9F\xA4\x97"), 0u);
  EXPECT_EQ(utf8_incomplete_tail("ab\xFF"), 0u);
}

TEST(TokenizerNormalizer, UnicodeForms) {
  EXPECT_EQ(normalize({{"type", "NFC"}}, "e\xCC\x81"), "\xC3\xA9");
  EXPECT_EQ(normalize({{"type", "NFD"}}, "\xC3\xA9"), "e\xCC\x81");
  EXPECT_EQ(normalize({{"type", "NFKC"}}, "\xEF\xAC\x81"), "fi");     // U+FB01 ligature
  EXPECT_EQ(normalize({{"type", "NFKD"}}, "\xC2\xBD"), "1\xE2\x81\x84" "2");  // ½
  EXPECT_EQ(normalize({{"type", "Lowercase"}}, "HeLLo \xC3\x84"), "hello \xC3\xA4");
  EXPECT_EQ(normalize({{"type", "Sequence"}, {"normalizers", {{{"type", "NFD"}}, {{"type", "StripAccents"}}}}}, "caf\xC3\xA9"),
            "cafe");
}

TEST(TokenizerNormalizer, PrependReplaceStrip) {
  json sp = {{"type", "Sequence"},
             {"normalizers", {{{"type", "Prepend"}, {"prepend", "\xE2\x96\x81"}},
                              {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\xE2\x96\x81"}}}}};
  EXPECT_EQ(normalize(sp, "Hello world"), "\xE2\x96\x81Hello\xE2\x96\x81world");
  EXPECT_EQ(normalize(sp, ""), "");  // Prepend leaves an empty string empty
  EXPECT_EQ(normalize({{"type", "Replace"}, {"pattern", {{"Regex", "\\s+"}}}, {"content", " "}}, "a \t\n b"), "a b");
  EXPECT_EQ(normalize({{"type", "Strip"}, {"strip_left", true}, {"strip_right", false}}, " \t x "), "x ");
  EXPECT_EQ(normalize({{"type", "Strip"}, {"strip_left", true}, {"strip_right", true}}, "\xE3\x80\x80x\xC2\xA0"), "x");
}

TEST(TokenizerPreTokenizer, SplitBehaviours) {
  // The example of the tokenizers docs (SplitDelimiterBehavior) on "the-final--countdown".
  auto split = [](const char* behavior, bool invert = false) {
    return pre_tokenize({{"type", "Split"}, {"pattern", {{"String", "-"}}}, {"behavior", behavior}, {"invert", invert}},
                        "the-final--countdown");
  };
  EXPECT_EQ(split("Removed"), (Strings{"the", "final", "countdown"}));
  EXPECT_EQ(split("Isolated"), (Strings{"the", "-", "final", "-", "-", "countdown"}));
  EXPECT_EQ(split("MergedWithPrevious"), (Strings{"the-", "final-", "-", "countdown"}));
  EXPECT_EQ(split("MergedWithNext"), (Strings{"the", "-final", "-", "-countdown"}));
  EXPECT_EQ(split("Contiguous"), (Strings{"the", "-", "final", "--", "countdown"}));
  EXPECT_EQ(split("Removed", true), (Strings{"-", "-", "-"}));
  EXPECT_EQ(pre_tokenize({{"type", "Split"}, {"pattern", {{"Regex", "\\p{N}{1,3}"}}}, {"behavior", "Isolated"}, {"invert", false}},
                         "a12345b"),
            (Strings{"a", "123", "45", "b"}));
}

TEST(TokenizerPreTokenizer, OtherPreTokenizers) {
  EXPECT_EQ(pre_tokenize({{"type", "Whitespace"}}, "Hello, world!"), (Strings{"Hello", ",", "world", "!"}));
  EXPECT_EQ(pre_tokenize({{"type", "WhitespaceSplit"}}, "Hello  there\tfriend"), (Strings{"Hello", "there", "friend"}));
  EXPECT_EQ(pre_tokenize({{"type", "Punctuation"}}, "Hey, friend!"), (Strings{"Hey", ",", " friend", "!"}));
  EXPECT_EQ(pre_tokenize({{"type", "Digits"}, {"individual_digits", true}}, "Call 123 please"),
            (Strings{"Call ", "1", "2", "3", " please"}));
  EXPECT_EQ(pre_tokenize({{"type", "Digits"}, {"individual_digits", false}}, "Call 123 please"),
            (Strings{"Call ", "123", " please"}));
  EXPECT_EQ(pre_tokenize({{"type", "ByteLevel"}, {"add_prefix_space", true}, {"use_regex", true}}, "Hello world's"),
            (Strings{"\xC4\xA0Hello", "\xC4\xA0world", "'s"}));
  EXPECT_EQ(pre_tokenize({{"type", "Metaspace"}, {"replacement", "\xE2\x96\x81"}, {"prepend_scheme", "always"}, {"split", true}},
                         "Hey friend!"),
            (Strings{"\xE2\x96\x81Hey", "\xE2\x96\x81" "friend!"}));
  EXPECT_EQ(pre_tokenize({{"type", "Metaspace"}, {"replacement", "\xE2\x96\x81"}, {"prepend_scheme", "never"}, {"split", false}},
                         "Hey friend"),
            (Strings{"Hey\xE2\x96\x81" "friend"}));
  // prepend_scheme "first" only prepends to the piece that starts the input.
  auto ms = make_metaspace("\xE2\x96\x81", PrependScheme::first, false);
  std::vector<Piece> pieces{{"a", true}, {"b", false}};
  ms->pre_tokenize(pieces);
  EXPECT_EQ(pieces[0].text, "\xE2\x96\x81" "a");
  EXPECT_EQ(pieces[1].text, "b");
}

TEST(TokenizerDecoder, Chains) {
  // An invalid <0xNN> run becomes one U+FFFD per byte; a valid one its character.
  EXPECT_EQ(decode_chain({{"type", "ByteFallback"}}, {"<0xE2>", "<0x80>", "<0x94>", "a"}), (Strings{"\xE2\x80\x94", "a"}));
  EXPECT_EQ(decode_chain({{"type", "ByteFallback"}}, {"<0xE2>", "<0x80>", "a"}),
            (Strings{"\xEF\xBF\xBD", "\xEF\xBF\xBD", "a"}));
  EXPECT_EQ(decode_chain({{"type", "Metaspace"}, {"replacement", "\xE2\x96\x81"}, {"prepend_scheme", "always"}},
                         {"\xE2\x96\x81Hey", "\xE2\x96\x81" "friend"}),
            (Strings{"Hey", " friend"}));
  EXPECT_EQ(decode_chain({{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 1}}, {"  a  "}), (Strings{" a "}));
  EXPECT_EQ(decode_chain({{"type", "ByteLevel"}}, {"\xC4\xA0Hello", "\xC4\xA0w\xC3\x83\xC2\xB6rld"}), (Strings{" Hello w\xC3\xB6rld"}));  // "Ã¶" = bytes C3 B6
  EXPECT_EQ(decode_chain({{"type", "WordPiece"}, {"prefix", "##"}, {"cleanup", true}}, {"un", "##aff", "##able", "."}),
            (Strings{"un", "aff", "able", "."}));
  EXPECT_EQ(cleanup_tokenization_spaces("Hello , world . I do n't"), "Hello, world. I don't");
}

std::vector<int32_t> bpe(const json& model, const std::string& word) {
  BpeModel m(model);
  std::vector<int32_t> out;
  m.tokenize(word, out);
  return out;
}

TEST(TokenizerBpe, MergeOrderAndOptions) {
  json vocab = {{"a", 0}, {"b", 1}, {"c", 2}, {"ab", 3}, {"bc", 4}, {"abc", 5}, {"<unk>", 6}};
  json m = {{"type", "BPE"}, {"vocab", vocab}, {"merges", {"b c", "a b", "a bc"}}, {"unk_token", "<unk>"}};
  EXPECT_EQ(bpe(m, "abc"), (std::vector<int32_t>{5}));  // b c first, then a bc
  json m2 = m;
  m2["merges"] = json::array({json::array({"a", "b"}), json::array({"b", "c"})});  // pair form; a b wins
  EXPECT_EQ(bpe(m2, "abc"), (std::vector<int32_t>{3, 2}));
  EXPECT_EQ(bpe(m2, "abab"), (std::vector<int32_t>{3, 3}));
  // Unknown characters: fuse_unk merges a run into one <unk>.
  EXPECT_EQ(bpe(m, "xxa"), (std::vector<int32_t>{6, 6, 0}));
  m["fuse_unk"] = true;
  EXPECT_EQ(bpe(m, "xxa"), (std::vector<int32_t>{6, 0}));
  // ignore_merges: a word in the vocab is taken whole.
  json m3 = {{"type", "BPE"}, {"vocab", {{"a", 0}, {"b", 1}, {"ab", 2}, {"abb", 3}}}, {"merges", {"a b"}}, {"ignore_merges", true}};
  EXPECT_EQ(bpe(m3, "abb"), (std::vector<int32_t>{3}));
  m3["ignore_merges"] = false;
  EXPECT_EQ(bpe(m3, "abb"), (std::vector<int32_t>{2, 1}));
  // byte_fallback: a missing character becomes its <0xNN> tokens.
  json bf = {{"type", "BPE"}, {"vocab", {{"a", 0}, {"<0xC3>", 1}, {"<0xA9>", 2}}}, {"merges", json::array()}, {"byte_fallback", true}};
  EXPECT_EQ(bpe(bf, "a\xC3\xA9"), (std::vector<int32_t>{0, 1, 2}));
  // continuing_subword_prefix / end_of_word_suffix.
  json cs = {{"type", "BPE"},
             {"vocab", {{"a", 0}, {"##b", 1}, {"##c</w>", 2}, {"a##b", 9}, {"ab", 3}, {"ab##c</w>", 8}, {"abc</w>", 4}}},
             {"merges", {"a ##b", "ab ##c</w>"}},
             {"continuing_subword_prefix", "##"},
             {"end_of_word_suffix", "</w>"}};
  EXPECT_EQ(bpe(cs, "abc"), (std::vector<int32_t>{4}));
  EXPECT_THROW(bpe({{"type", "BPE"}, {"vocab", {{"a", 0}}}, {"merges", {"a z"}}}, "a"), Error);
}

// Writes a tokenizer.json (and optional tokenizer_config.json) into a fresh folder.
std::filesystem::path write_tokenizer(const json& tj, const json& cfg = nullptr) {
  auto dir = test::temp_dir("tok");
  std::ofstream(dir / "tokenizer.json") << tj.dump();
  if (!cfg.is_null()) std::ofstream(dir / "tokenizer_config.json") << cfg.dump();
  return dir;
}

json char_model() {
  json vocab = json::object();
  int id = 0;
  for (char c : std::string(" abcdefghijklmnopqrstuvwxyz<>/_.")) vocab[std::string(1, c)] = id++;
  return {{"type", "BPE"}, {"vocab", vocab}, {"merges", json::array()}};
}

TEST(TokenizerAddedTokens, StripAndSingleWord) {
  json tj = {{"model", char_model()},
             {"added_tokens",
              {{{"id", 100}, {"content", "<m>"}, {"special", true}, {"normalized", false}, {"lstrip", true}, {"rstrip", true}},
               {{"id", 101}, {"content", "cat"}, {"special", false}, {"normalized", false}, {"single_word", true}},
               {{"id", 102}, {"content", "<mm>"}, {"special", true}, {"normalized", false}}}}};
  auto tok = Tokenizer::load(write_tokenizer(tj), TokenizerLoadOptions{.transformers_compat = false});
  auto id = [&](char c) { return *tok->token_to_id(std::string(1, c)); };
  // lstrip/rstrip swallow the spaces around <m>.
  EXPECT_EQ(tok->encode("a  <m>  b"), (std::vector<int32_t>{id('a'), 100, id('b')}));
  // Longest match: <mm> rather than <m> followed by "m>".
  EXPECT_EQ(tok->encode("<mm>"), (std::vector<int32_t>{102}));
  // single_word: "cat" only as a whole word.
  EXPECT_EQ(tok->encode("a cat"), (std::vector<int32_t>{id('a'), id(' '), 101}));
  EXPECT_EQ(tok->encode("cats"), (std::vector<int32_t>{id('c'), id('a'), id('t'), id('s')}));
  EXPECT_TRUE(tok->is_special(100));
  EXPECT_FALSE(tok->is_special(101));
  EXPECT_EQ(tok->decode(std::vector<int32_t>{id('a'), 100, 101}, true), "a cat");
}

TEST(TokenizerLoad, ConfigRules) {
  json tj = {{"model", char_model()},
             {"added_tokens",
              {{{"id", 50}, {"content", "<s>"}, {"special", true}, {"normalized", false}},
               {{"id", 51}, {"content", "</s>"}, {"special", true}, {"normalized", false}}}},
             {"decoder", {{"type", "Fuse"}}}};
  json cfg = {{"bos_token", {{"content", "<s>"}, {"lstrip", false}}},
              {"eos_token", "</s>"},
              {"add_bos_token", true},
              {"add_eos_token", true},
              {"clean_up_tokenization_spaces", true},
              {"chat_template", {{{"name", "tool_use"}, {"template", "T"}}, {{"name", "default"}, {"template", "D"}}}}};
  auto tok = Tokenizer::load(write_tokenizer(tj, cfg));
  auto a = *tok->token_to_id("a");
  EXPECT_EQ(tok->encode("a"), (std::vector<int32_t>{50, a, 51}));
  EXPECT_EQ(tok->encode("a", false), (std::vector<int32_t>{a}));
  EXPECT_EQ(tok->bos_id(), 50);
  EXPECT_EQ(tok->eos_id(), 51);
  EXPECT_EQ(tok->chat_template(), "D");
  EXPECT_EQ(tok->decode(tok->encode("a .", false)), "a.");  // clean_up_tokenization_spaces
  auto raw = Tokenizer::load(write_tokenizer(tj, cfg), TokenizerLoadOptions{.transformers_compat = false});
  EXPECT_EQ(raw->encode("a"), (std::vector<int32_t>{a}));  // no post-processor in tokenizer.json
}

TEST(TokenizerLoad, ErrorsNameTheFile) {
  auto expect_error = [](const std::filesystem::path& p, const std::string& needle) {
    try {
      Tokenizer::load(p);
      ADD_FAILURE() << "no error for " << p;
    } catch (const Error& e) {
      std::string msg = e.what();
      EXPECT_NE(msg.find(needle), std::string::npos) << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    }
  };
  auto empty = test::temp_dir("tok-empty");
  expect_error(empty, "no tokenizer.json");
  expect_error(empty / "missing", "no such tokenizer");
  auto bad = test::temp_dir("tok-bad");
  std::ofstream(bad / "tokenizer.json") << "{not json";
  expect_error(bad, "invalid JSON");
  expect_error(write_tokenizer({{"model", {{"type", "Unigram"}, {"vocab", json::array()}}}}), "Unigram");
  expect_error(write_tokenizer({{"model", char_model()}, {"normalizer", {{"type", "Precompiled"}}}}), "Precompiled");
  expect_error(write_tokenizer({{"model", char_model()},
                                {"pre_tokenizer", {{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}}}}),
               "(unclosed");
}

}  // namespace
}  // namespace qforge::tok
