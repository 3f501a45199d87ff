// tests/unit/gguf_model_test.cpp — GGUF models and tokenizers: the demo model written as f32 GGUF
// loads back with bit-identical logits (so the Q/K permutation and its inverse agree), Q8_0/Q4_0
// tensors load as the same blocks qforge's quantizer makes, the GGUF vocabulary tokenizes like the
// original tokenizer.json, byte-level (gpt2) vocabularies work, and bad metadata gives clear errors.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "io/gguf.h"
#include "io/gguf_tokenizer.h"
#include "model/gguf_model.h"
#include "qforge/model.h"
#include "qforge/status.h"
#include "qforge/tokenizer.h"
#include "test_support.h"

namespace qforge {
namespace {

namespace fs = std::filesystem;

const fs::path& demo_gguf(const std::string& fmt) {
  static std::map<std::string, fs::path> files;
  auto& p = files[fmt];
  if (p.empty()) {
    p = test::temp_dir("gguf_model_" + fmt) / ("kjv-" + fmt + ".gguf");
    GgufWriteOptions o;
    o.format = fmt;
    write_gguf_from_checkpoint(test::demo_model_dir().string(), p, o);
  }
  return p;
}

TEST(GgufModel, F32RoundTripIsBitExact) {
  LoadOptions o;
  o.dtype = DType::F32;
  o.device = "cpu";
  auto ref = Model::load(test::demo_model_dir().string(), o);
  auto g = Model::load(demo_gguf("f32").string(), o);
  const auto& a = ref->config();
  const auto& b = g->config();
  EXPECT_EQ(b.hidden_size, a.hidden_size);
  EXPECT_EQ(b.num_key_value_heads, a.num_key_value_heads);
  EXPECT_EQ(b.head_dim, a.head_dim);
  EXPECT_EQ(b.vocab_size, a.vocab_size);
  EXPECT_EQ(b.tie_word_embeddings, a.tie_word_embeddings);
  EXPECT_DOUBLE_EQ(b.rms_norm_eps, double(float(a.rms_norm_eps)));
  EXPECT_EQ(b.bos_token_id, a.bos_token_id);
  EXPECT_EQ(b.eos_token_ids, a.eos_token_ids);
  const std::vector<int32_t> ids{1, 2404, 28740, 28747, 28740, 1015, 378};
  auto la = ref->forward(ids, 0, true);
  auto lb = g->forward(ids, 0, true);
  ASSERT_EQ(la.size(), lb.size());
  for (size_t i = 0; i < la.size(); ++i) ASSERT_EQ(la[i], lb[i]) << "logit " << i;
}

TEST(GgufModel, QuantizedTensorsAreQforgeBlocks) {
  // attn_v is not permuted; ffn_down's 768 columns are whole Q6_K super-blocks.
  const std::pair<std::string, std::string> cases[] = {
      {"q8_0", "blk.0.attn_v.weight"}, {"q4_0", "blk.0.attn_v.weight"}, {"q5_0", "blk.0.attn_v.weight"},
      {"q6_k", "blk.1.ffn_down.weight"}, {"q4_1", "blk.0.attn_v.weight"}, {"q5_1", "blk.0.attn_v.weight"},
      {"q5_k", "blk.1.ffn_down.weight"}, {"q2_k", "blk.1.ffn_down.weight"}, {"q3_k", "blk.1.ffn_down.weight"}};
  for (const auto& [fmt, name] : cases) {
    const io::GgufFile f = io::GgufFile::open(demo_gguf(fmt));
    const auto* t = f.find_tensor(name);
    ASSERT_TRUE(t);
    std::string upper = fmt;
    for (auto& ch : upper) ch = char(std::toupper(static_cast<unsigned char>(ch)));
    EXPECT_EQ(io::ggml_type_name(t->type), upper);
    LoadOptions o;
    o.dtype = DType::F32;
    auto ref = Model::load(test::demo_model_dir().string(), o);  // f32 weights
    // Quantize the original v_proj with qforge and compare the bytes.
    const io::GgufFile src = io::GgufFile::open(demo_gguf("f32"));
    const auto* v = src.find_tensor(name);
    Tensor w = Tensor::view(DType::F32, v->shape(), v->data, nullptr);
    QuantWeight q = quantize_weight(w, *parse_quant_format(fmt), {});
    ASSERT_EQ(q.data.nbytes(), t->nbytes);
    EXPECT_EQ(std::memcmp(q.data.raw(), t->data, t->nbytes), 0) << fmt;
  }
}

TEST(GgufModel, Q4KFallsBackPerTensor) {
  const io::GgufFile f = io::GgufFile::open(demo_gguf("q4_k"));
  // 288 columns: not a multiple of 256 -> Q5_0, as llama.cpp does; ffn_down has 768 columns -> Q4_K.
  EXPECT_EQ(io::ggml_type_name(f.find_tensor("blk.0.attn_q.weight")->type), "Q5_0");
  EXPECT_EQ(io::ggml_type_name(f.find_tensor("blk.0.ffn_down.weight")->type), "Q4_K");
  EXPECT_EQ(f.require_int("general.file_type"), 14);
  LoadOptions o;
  auto m = Model::load(demo_gguf("q4_k").string(), o);
  auto l = m->forward(std::vector<int32_t>{1, 2404}, 0);
  EXPECT_EQ(l.size(), size_t(m->config().vocab_size));
}

TEST(GgufModel, Q4KMIsLlamaCppsMix) {
  // llama.cpp's Q4_K_M for 6 layers: Q6_K for ffn_down / attn_v of layers 0 (< n/8 = 0: none), 2 and 5
  // ((i - 0) % 3 == 2, i >= 7n/8 = 5); the tied embedding takes the output rule (288 columns: Q8_0);
  // other rows of 288 columns fall back from Q4_K to Q5_0, attn_v's Q6_K to Q8_0.
  const io::GgufFile f = io::GgufFile::open(demo_gguf("q4_k_m"));
  auto type = [&](const std::string& n) { return std::string(io::ggml_type_name(f.find_tensor(n)->type)); };
  EXPECT_EQ(f.require_int("general.file_type"), 15);
  EXPECT_EQ(type("token_embd.weight"), "Q8_0");
  for (int i = 0; i < 6; ++i) {
    const std::string b = "blk." + std::to_string(i) + ".";
    const bool more = i == 2 || i == 5;
    EXPECT_EQ(type(b + "ffn_down.weight"), more ? "Q6_K" : "Q4_K") << i;
    EXPECT_EQ(type(b + "attn_v.weight"), more ? "Q8_0" : "Q5_0") << i;
    EXPECT_EQ(type(b + "attn_q.weight"), "Q5_0") << i;
    EXPECT_EQ(type(b + "ffn_up.weight"), "Q5_0") << i;
  }
  // Loads and predicts close to the f32 model (4-6 bit weights): logits within 15% RMS, same argmax.
  LoadOptions o;
  o.dtype = DType::F32;
  o.device = "cpu";
  auto ref = Model::load(test::demo_model_dir().string(), o);
  auto m = Model::load(demo_gguf("q4_k_m").string(), o);
  const std::vector<int32_t> ids{1, 2404, 28740, 28747, 28740, 1015, 378};
  const auto la = ref->forward(ids, 0), lb = m->forward(ids, 0);
  ASSERT_EQ(la.size(), lb.size());
  double num = 0, den = 0;
  for (size_t i = 0; i < la.size(); ++i) {
    num += double(la[i] - lb[i]) * (la[i] - lb[i]);
    den += double(la[i]) * la[i];
  }
  EXPECT_LT(std::sqrt(num / den), 0.15);
  EXPECT_GT(num, 0.0);  // really quantized
  EXPECT_EQ(std::max_element(la.begin(), la.end()) - la.begin(), std::max_element(lb.begin(), lb.end()) - lb.begin());
}

TEST(GgufTokenizer, DemoVocabularyTokenizesLikeTokenizerJson) {
  auto orig = Tokenizer::load(test::demo_model_dir());
  auto g = load_gguf_tokenizer(demo_gguf("q4_0"));
  EXPECT_EQ(g->vocab_size(), orig->vocab_size());
  EXPECT_EQ(g->bos_id(), orig->bos_id());
  EXPECT_EQ(g->eos_id(), orig->eos_id());
  EXPECT_EQ(g->chat_template(), orig->chat_template());
  std::ifstream f(test::source_dir() / "eval/kjv_eval.txt");
  std::string line;
  int lines = 0, same = 0;
  while (std::getline(f, line) && lines < 300) {
    ++lines;
    auto a = orig->encode(line), b = g->encode(line);
    same += a == b;
    EXPECT_EQ(g->decode(a), orig->decode(a));
  }
  EXPECT_EQ(same, lines) << "lines tokenized identically";
  for (const char* s : {"In the beginning God created", "caf\xC3\xA9 \xF0\x9F\x98\x80 x\nnewline"})
    EXPECT_EQ(g->encode(s), orig->encode(s)) << s;
  // Known differences (docs/gguf.md): runs of spaces ("▁▁" merges from scores) and text right after a
  // special token (transformers' LlamaTokenizer pipeline is not representable in GGUF metadata).
  EXPECT_NE(g->encode("  two  spaces"), orig->encode("  two  spaces"));
}

// A tiny byte-level vocabulary in GGUF metadata ("gpt2" model with merges).
TEST(GgufTokenizer, ByteLevelVocabulary) {
  const auto dir = test::temp_dir("gguf_bpe");
  io::GgufWriter w;
  std::vector<std::string> toks{"<|begin|>", "h", "e", "l", "o", "\xC4\xA0", "w", "r", "d", "he", "ll", "hell", "hello",
                                "\xC4\xA0w", "or", "\xC4\xA0wor", "\xC4\xA0world"};
  std::vector<double> types(toks.size(), 1);
  types[0] = 3;
  w.set("tokenizer.ggml.model", io::GgufValue::str("gpt2"));
  w.set("tokenizer.ggml.pre", io::GgufValue::str("llama-bpe"));
  w.set("tokenizer.ggml.tokens", io::GgufValue::str_array(toks));
  w.set("tokenizer.ggml.token_type", io::GgufValue::num_array(io::GgufType::I32, types));
  w.set("tokenizer.ggml.merges", io::GgufValue::str_array({"h e", "l l", "he ll", "hell o", "\xC4\xA0 w", "o r",
                                                          "\xC4\xA0w or"}));
  w.set("tokenizer.ggml.bos_token_id", io::GgufValue::u32(0));
  w.set("tokenizer.ggml.add_bos_token", io::GgufValue::boolean(true));
  w.write(dir / "v.gguf");
  auto t = load_gguf_tokenizer(dir / "v.gguf");
  EXPECT_EQ(t->encode("hello"), (std::vector<int32_t>{0, 12}));
  EXPECT_EQ(t->encode("hello wor", false), (std::vector<int32_t>{12, 15}));
  EXPECT_EQ(t->decode(std::vector<int32_t>{12, 15}), "hello wor");
  EXPECT_TRUE(t->is_special(0));
}

TEST(GgufTokenizer, BadMetadataIsAClearError) {
  const auto dir = test::temp_dir("gguf_badtok");
  auto expect = [&](io::GgufWriter& w, const std::string& needle) {
    w.write(dir / "t.gguf");
    try {
      load_gguf_tokenizer(dir / "t.gguf");
      ADD_FAILURE() << "no error, expected " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("t.gguf"), std::string::npos) << e.what();
    }
  };
  io::GgufWriter a;
  a.set("tokenizer.ggml.model", io::GgufValue::str("bert"));
  expect(a, "'bert' is not supported");
  io::GgufWriter b;
  b.set("tokenizer.ggml.model", io::GgufValue::str("llama"));
  b.set("tokenizer.ggml.tokens", io::GgufValue::str_array({"a", "b"}));
  b.set("tokenizer.ggml.scores", io::GgufValue::num_array(io::GgufType::F32, {0}));
  expect(b, "has 1 entries");
  io::GgufWriter c;
  c.set("tokenizer.ggml.model", io::GgufValue::str("llama"));
  c.set("tokenizer.ggml.tokens", io::GgufValue::str_array({"a", "b"}));
  c.set("tokenizer.ggml.scores", io::GgufValue::num_array(io::GgufType::F32, {0, 0}));
  c.set("tokenizer.ggml.bos_token_id", io::GgufValue::u32(5));
  expect(c, "is not a token id");
  io::GgufWriter d;
  d.set("tokenizer.ggml.model", io::GgufValue::str("no_vocab"));
  expect(d, "has no tokenizer");
  io::GgufWriter e;  // a token type out of range (found by the fuzzer: the value was cast to int)
  e.set("tokenizer.ggml.model", io::GgufValue::str("llama"));
  e.set("tokenizer.ggml.tokens", io::GgufValue::str_array({"a", "b"}));
  e.set("tokenizer.ggml.scores", io::GgufValue::num_array(io::GgufType::F32, {0, 0}));
  e.set("tokenizer.ggml.token_type", io::GgufValue::num_array(io::GgufType::U32, {1, 4294967295.0}));
  expect(e, "tokenizer.ggml.token_type[1] = 4294967295.000000 is not a token type (0..6)");
}

TEST(GgufModel, BadModelMetadataIsAClearError) {
  const auto dir = test::temp_dir("gguf_badmodel");
  io::GgufWriter w;
  w.set("general.architecture", io::GgufValue::str("gpt2"));
  w.write(dir / "m.gguf");
  try {
    Model::load((dir / "m.gguf").string());
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'gpt2' is not supported"), std::string::npos) << e.what();
  }
  io::GgufWriter v;
  v.set("general.architecture", io::GgufValue::str("llama"));
  v.set("llama.embedding_length", io::GgufValue::u32(64));
  v.write(dir / "m2.gguf");
  try {
    Model::load((dir / "m2.gguf").string());
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("missing metadata 'llama.attention.head_count'"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace qforge
